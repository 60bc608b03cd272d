// KVSERVE_CHECK(condition) and KVSERVE_CHECK_MSG(condition, message): invariant checks that stay
// on in every build type. A failed check is a bug in kvserve (never bad input, which gets an
// absl::Status; a wrong page id would otherwise read or write out of bounds): it prints the file,
// line, condition and message to stderr and aborts. `message` is anything std::string can be
// built from, and is evaluated only when the check fails.
#ifndef KVSERVE_BASE_CHECK_H_
#define KVSERVE_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#define KVSERVE_CHECK_MSG(condition, message)                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #condition, \
                   std::string(message).c_str());                                            \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

#define KVSERVE_CHECK(condition)                                                         \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

#endif  // KVSERVE_BASE_CHECK_H_
