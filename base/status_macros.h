// Status propagation helpers for the Jinja subset's implementation files (internal).
#ifndef KVSERVE_BASE_STATUS_MACROS_H_
#define KVSERVE_BASE_STATUS_MACROS_H_

#define JINJA_CONCAT_INNER(a, b) a##b
#define JINJA_CONCAT(a, b) JINJA_CONCAT_INNER(a, b)

// Declares `lhs` (an `auto` binding) from a StatusOr expression, or returns its error.
#define JINJA_ASSIGN_OR_RETURN(lhs, rexpr)                                  \
  auto JINJA_CONCAT(lhs, _or) = (rexpr);                                    \
  if (!JINJA_CONCAT(lhs, _or).ok()) return JINJA_CONCAT(lhs, _or).status(); \
  auto lhs = std::move(*JINJA_CONCAT(lhs, _or))

#define JINJA_RETURN_IF_ERROR(expr)                \
  do {                                             \
    absl::Status jinja_status_ = (expr);           \
    if (!jinja_status_.ok()) return jinja_status_; \
  } while (0)

#endif  // KVSERVE_BASE_STATUS_MACROS_H_
