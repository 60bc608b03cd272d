// Fuzzes the Hugging Face tokenizer loader: LoadTokenizerFromHfJson on a fuzzed tokenizer.json
// and tokenizer_config.json (bos_token / eos_token / add_bos_token), the chat template of that
// tokenizer_config.json, and, when a tokenizer loads, encoding and decoding with it
// (tokenizer_checks.h). The input is tokenizer.json, optionally followed by kConfigSeparator
// and tokenizer_config.json.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/tokenizer.h"
#include "server/models/chat_template.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/tokenizer_checks.h"

namespace {
constexpr std::string_view kConfigSeparator = "\n#tokenizer_config.json\n";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find(kConfigSeparator);
  const fuzz::MemoryFile tokenizer_json(input.substr(0, split));
  std::optional<fuzz::MemoryFile> config;
  if (split != std::string_view::npos) {
    config.emplace(input.substr(split + kConfigSeparator.size()));
    absl::StatusOr<std::optional<std::string>> chat_template =
        server::ChatTemplateFromTokenizerConfig(config->path());
    if (chat_template.ok() && chat_template->has_value()) {
      (void)server::ChatTemplate::Parse(**chat_template);
    }
  }
  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer = engine::LoadTokenizerFromHfJson(
      tokenizer_json.path(), config.has_value() ? config->path() : "");
  if (!tokenizer.ok()) return 0;
  fuzz::CheckTokenizer(**tokenizer, "Hello world, <s> \xe2\x96\x81x\n\t 123 \xff <|x|>");
  return 0;
}
