#include "base/log.h"

#include <cstdio>

namespace kvserve::base {

void Log(absl::string_view line) {
  std::fprintf(stderr, "kvserve: %.*s\n", static_cast<int>(line.size()), line.data());
  std::fflush(stderr);
}

}  // namespace kvserve::base
