// KVSERVE_SCHEDULER_CHECK: invariant checks that stay on in release builds. A failed check is a
// bug in kvserve (never bad input, which gets an absl::Status): it prints where and aborts.
#ifndef KVSERVE_BASE_CHECK_H_
#define KVSERVE_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define KVSERVE_SCHEDULER_CHECK(condition)                                               \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

#endif  // KVSERVE_BASE_CHECK_H_
