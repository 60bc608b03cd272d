#include "server/frontend/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace kvserve::server {

bool BearerTokenMatches(absl::string_view authorization, absl::string_view api_key) {
  absl::string_view value = absl::StripAsciiWhitespace(authorization);
  if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) return false;
  value = absl::StripAsciiWhitespace(value.substr(7));
  // Constant-time comparison: the key is a secret.
  if (value.size() != api_key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < value.size(); ++i) diff |= value[i] ^ api_key[i];
  return diff == 0;
}

}  // namespace kvserve::server
