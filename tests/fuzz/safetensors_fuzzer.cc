// Fuzzes SafetensorsFile::Open (the 8-byte header length, the JSON header, every tensor entry's
// dtype, shape and data_offsets against the file) and then touches every tensor's first and
// last byte, so a byte range the reader let leave the file is caught. The input is the file.
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  const fuzz::MemoryFile input(std::string_view(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<std::unique_ptr<engine::SafetensorsFile>> file =
      engine::SafetensorsFile::Open(input.path());
  if (!file.ok()) return 0;
  int sum = 0;
  for (const engine::SafetensorsTensor& t : (*file)->tensors()) {
    fuzz::FuzzCheck((*file)->Find(t.name) == &t, "a tensor is not found by its name");
    fuzz::FuzzCheck(t.num_bytes >= 0 && t.num_elements >= 0, "a tensor has a negative size");
    (void)engine::SafetensorsDTypeToGgml(t.dtype);
    if (t.num_bytes == 0) continue;
    fuzz::FuzzCheck(t.data != nullptr, "a tensor with bytes has no data");
    sum += t.data[0] + t.data[t.num_bytes - 1];
  }
  volatile int sink = sum;
  (void)sink;
  return 0;
}
