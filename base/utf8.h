// UTF-8 helpers shared by every layer: encoding one code point, and the one rule for text that
// leaves kvserve (streamed deltas, gRPC strings, JSON bodies):
//
//   bytes that form a well-formed UTF-8 character pass through; a sequence that may still be
//   completed by bytes yet to come is held back; every byte that can never be part of a
//   character (stray continuation bytes, overlong forms, surrogates, > U+10FFFF, a lead byte
//   cut short) becomes U+FFFD, one per byte; at the end of the stream a held-back sequence
//   becomes one U+FFFD.
//
// Replacing rather than passing invalid bytes through is what every consumer needs: proto3
// `string` fields and JSON must be valid UTF-8, and a terminal shows U+FFFD for them anyway. Raw
// bytes stay available where a caller wants them (Tokenizer::Decode, TokenLogprob.token_bytes).
//
// Thread-safety: free functions are pure; one Utf8Stream per stream.
#ifndef KVSERVE_BASE_UTF8_H_
#define KVSERVE_BASE_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace kvserve::base {

inline constexpr uint32_t kReplacementCharacter = 0xFFFD;
inline constexpr char kReplacementUtf8[] = "\xEF\xBF\xBD";  // U+FFFD

// Appends the UTF-8 encoding of `cp` (at most U+10FFFF) to `out`.
void AppendUtf8(uint32_t cp, std::string* out);

// Turns a stream of bytes into valid UTF-8 text deltas by the rule above.
class Utf8Stream {
 public:
  // Appends `bytes` and returns the text that is now complete.
  std::string Add(absl::string_view bytes);
  // End of stream: whatever is held back (an incomplete sequence) as U+FFFD.
  std::string Flush();
  bool has_pending() const { return !pending_.empty(); }

 private:
  std::string pending_;
};

// `bytes` as valid UTF-8 by the same rule (a whole stream at once).
std::string SanitizeUtf8(absl::string_view bytes);

// Where `bytes` stops being well-formed UTF-8 by the same rule (a sequence cut short at the end
// included): the offset of the first byte that is not part of a character, or npos when all are.
// For text that enters kvserve (proto3 string fields of requests must be valid UTF-8).
size_t FindInvalidUtf8(absl::string_view bytes);

}  // namespace kvserve::base

#endif  // KVSERVE_BASE_UTF8_H_
