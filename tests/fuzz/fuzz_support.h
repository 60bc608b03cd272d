// Helpers shared by the libFuzzer targets of tests/fuzz (see tests/fuzz/CMakeLists.txt).
//
// MemoryFile: fuzz input as a file, for readers that only open paths (GGUF, safetensors,
// config.json, tokenizer.json). The bytes live in an anonymous memory file (memfd), so no disk is
// touched and nothing is left behind; path() names it through /proc/self/fd and any open() of it
// sees a regular file of exactly those bytes.
//
// FuzzCheck: a property a fuzzer asserts about the code under test. Failing prints the message
// and aborts, which libFuzzer reports as a crash and saves the input.
//
// Ownership: a MemoryFile owns its descriptor and closes it when destroyed. Thread-safety: none
// needed (libFuzzer runs one input at a time).
#ifndef KVSERVE_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define KVSERVE_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <string>
#include <string_view>

namespace kvserve::fuzz {

class MemoryFile {
 public:
  explicit MemoryFile(std::string_view bytes);
  ~MemoryFile();
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Aborts with `what` when `ok` is false.
void FuzzCheck(bool ok, std::string_view what);

}  // namespace kvserve::fuzz

#endif  // KVSERVE_TESTS_FUZZ_FUZZ_SUPPORT_H_
