// KVSERVE_KERNEL_CHECK(cond, msg): aborts with file, line and `msg` when an invariant of the
// kernels (shapes, page ids) is broken. Active in every build type: a wrong page id would
// otherwise read or write out of bounds. Private to the kernel sources.
#ifndef KVSERVE_ENGINE_KERNEL_CHECK_INTERNAL_H_
#define KVSERVE_ENGINE_KERNEL_CHECK_INTERNAL_H_

#include <cstdio>
#include <cstdlib>

#define KVSERVE_KERNEL_CHECK(cond, msg)                                                       \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, msg); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

#endif  // KVSERVE_ENGINE_KERNEL_CHECK_INTERNAL_H_
