// Unicode helpers for the tokenizers: UTF-8 decoding the way llama.cpp does it (encoding and
// the streaming rule are base/utf8.h),
// the code point classes the pre-tokenizer regexes use (\p{L}, \p{N}, \s, \p{P}, from ICU's
// character database), and GPT-2's byte <-> printable code point mapping.
//
// Stateless free functions; all are thread-safe.
#ifndef KVSERVE_ENGINE_UNICODE_H_
#define KVSERVE_ENGINE_UNICODE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/utf8.h"

namespace kvserve::engine {

using base::AppendUtf8;
using base::kReplacementCharacter;

// Length in bytes of the UTF-8 sequence that starts with `lead`, judged by its high bits only
// (1 for ASCII and for stray continuation bytes, 2, 3 or 4). Callers clamp it to the text left.
inline int Utf8SequenceLength(uint8_t lead) {
  static constexpr int kByHighNibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kByHighNibble[lead >> 4];
}

// Decodes UTF-8 into code points. A malformed sequence yields U+FFFD and consumes one byte
// (llama.cpp's rule, so pre-tokenization of bad input matches it).
std::vector<uint32_t> DecodeUtf8(std::string_view text);

// Code point classes used by the pre-tokenizers.
struct CodepointClass {
  bool letter = false;       // \p{L}
  bool number = false;       // \p{N}
  bool whitespace = false;   // \s: the Unicode White_Space set
  bool punctuation = false;  // \p{P}
};
CodepointClass ClassifyCodepoint(uint32_t cp);

// GPT-2 byte-level mapping: every byte is shown as a printable code point (printable Latin-1
// bytes map to themselves, the others to U+0100 and up), as a UTF-8 string.
const std::string& ByteToUnicode(uint8_t byte);
// Inverse: the byte shown by `cp`, or -1 when `cp` shows no byte.
int UnicodeToByte(uint32_t cp);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_UNICODE_H_
