#include "tests/fuzz/fuzz_support.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace kvserve::fuzz {

MemoryFile::MemoryFile(std::string_view bytes) {
  fd_ = memfd_create("kvserve-fuzz", MFD_CLOEXEC);
  FuzzCheck(fd_ >= 0, "memfd_create failed");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd_, bytes.data() + written, bytes.size() - written);
    FuzzCheck(n > 0, "writing the memory file failed");
    written += static_cast<size_t>(n);
  }
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

MemoryFile::~MemoryFile() { close(fd_); }

void FuzzCheck(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

}  // namespace kvserve::fuzz
