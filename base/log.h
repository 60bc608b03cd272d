// Log: the server's one way to write a line for its operator: "kvserve: <line>" on stderr,
// flushed at once (the container runtime and the tests read it as it comes). Errors that a
// request's client must see are Statuses, not log lines.
//
// Thread-safety: thread-safe (one fprintf per line).
#ifndef KVSERVE_BASE_LOG_H_
#define KVSERVE_BASE_LOG_H_

#include "absl/strings/string_view.h"

namespace kvserve::base {

void Log(absl::string_view line);

}  // namespace kvserve::base

#endif  // KVSERVE_BASE_LOG_H_
