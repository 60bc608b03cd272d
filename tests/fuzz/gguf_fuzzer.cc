// Fuzzes the GGUF reader and what model loading reads from it: GgufFile::Open (header, every
// metadata value type including nested arrays, the tensor directory), every typed getter on every
// key, the bytes of every tensor, ModelConfigFromGguf, LoadTokenizerFromGguf (and, when a
// tokenizer loads, encoding and decoding with it) and the chat template key. The input is the
// whole file. GgufFile promises that no input can crash it.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/gguf.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"
#include "server/models/chat_template.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/tokenizer_checks.h"

namespace kvserve::fuzz {
namespace {

void ReadEveryKey(const engine::GgufFile& file) {
  for (const auto& [key, value] : file.metadata()) {
    FuzzCheck(file.FindMetadata(key) != nullptr, "a metadata key is not found by its name");
    (void)file.GetInt(key);
    (void)file.GetFloat(key);
    (void)file.GetBool(key);
    (void)file.GetString(key);
    (void)file.GetIntArray(key);
    (void)file.GetFloatArray(key);
    (void)file.GetStringArray(key);
  }
}

// Touches the first and last byte of every tensor: ASan (or the end of the mapping) catches a
// tensor the reader let reach past the file.
int TouchTensors(const engine::GgufFile& file) {
  int sum = 0;
  for (const engine::GgufTensorInfo& t : file.tensors()) {
    FuzzCheck(t.num_bytes >= 0 && t.num_elements >= 0, "a tensor has a negative size");
    FuzzCheck(file.FindTensor(t.name) != nullptr, "a tensor is not found by its name");
    if (t.num_bytes == 0) continue;
    FuzzCheck(t.data != nullptr, "a tensor with bytes has no data");
    sum += t.data[0] + t.data[t.num_bytes - 1];
  }
  return sum;
}

}  // namespace
}  // namespace kvserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  const fuzz::MemoryFile input(std::string_view(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<std::unique_ptr<engine::GgufFile>> file = engine::GgufFile::Open(input.path());
  if (!file.ok()) return 0;
  fuzz::ReadEveryKey(**file);
  volatile int sink = fuzz::TouchTensors(**file);
  (void)sink;
  (void)engine::ModelConfigFromGguf(**file);
  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer =
      engine::LoadTokenizerFromGguf(**file);
  if (tokenizer.ok())
    fuzz::CheckTokenizer(**tokenizer, "Hello world, <s> \xe2\x96\x81x\n\t 123 \xff");
  absl::StatusOr<std::optional<std::string>> chat_template =
      server::ChatTemplateFromGgufMetadata(**file);
  if (chat_template.ok() && chat_template->has_value()) {
    (void)server::ChatTemplate::Parse(**chat_template);
  }
  return 0;
}
