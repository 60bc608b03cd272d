// API-key checks shared by every transport: the gRPC metadata and the HTTP header both carry
// `Bearer KEY`.
//
// Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_FRONTEND_AUTH_H_
#define KVSERVE_SERVER_FRONTEND_AUTH_H_

#include "absl/strings/string_view.h"

namespace kvserve::server {

// Whether an Authorization value carries `api_key` as a Bearer token ("Bearer KEY", the scheme
// in any case, surrounding spaces ignored). The key is compared in constant time.
bool BearerTokenMatches(absl::string_view authorization, absl::string_view api_key);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_AUTH_H_
