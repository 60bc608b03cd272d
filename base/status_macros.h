// Status propagation for implementation files: KVSERVE_RETURN_IF_ERROR(expr) returns a non-OK
// absl::Status; KVSERVE_ASSIGN_OR_RETURN(name, expr) declares `auto name` from an
// absl::StatusOr or returns its error.
#ifndef KVSERVE_BASE_STATUS_MACROS_H_
#define KVSERVE_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"

#define KVSERVE_STATUS_CONCAT_INNER(a, b) a##b
#define KVSERVE_STATUS_CONCAT(a, b) KVSERVE_STATUS_CONCAT_INNER(a, b)

// Declares `lhs` (an `auto` binding) from a StatusOr expression, or returns its error.
#define KVSERVE_ASSIGN_OR_RETURN(lhs, rexpr)                                                  \
  auto KVSERVE_STATUS_CONCAT(lhs, _or) = (rexpr);                                             \
  if (!KVSERVE_STATUS_CONCAT(lhs, _or).ok()) return KVSERVE_STATUS_CONCAT(lhs, _or).status(); \
  auto lhs = std::move(*KVSERVE_STATUS_CONCAT(lhs, _or))

#define KVSERVE_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    absl::Status kvserve_status_ = (expr);             \
    if (!kvserve_status_.ok()) return kvserve_status_; \
  } while (0)

#endif  // KVSERVE_BASE_STATUS_MACROS_H_
