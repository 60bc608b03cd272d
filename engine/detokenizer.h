// Detokenizer: turns a stream of token ids into text deltas for streaming responses.
//
// Each Add() returns the text that became final, by the one streaming rule of base/utf8.h (bytes
// of an incomplete character wait for the token that completes them; bytes that can never form
// a character become U+FFFD), with the SPM leading space handled as Tokenizer::Decode handles
// it. Add() deltas followed by Finish() concatenate to base::SanitizeUtf8(tokenizer.Decode(all
// ids)): Decode's bytes exactly where they are valid UTF-8.
//
// Ownership: borrows the Tokenizer, which must outlive it. Thread-safety: not thread-safe; one
// Detokenizer per stream.
#ifndef KVSERVE_ENGINE_DETOKENIZER_H_
#define KVSERVE_ENGINE_DETOKENIZER_H_

#include <cstdint>
#include <string>

#include "base/utf8.h"
#include "engine/tokenizer.h"

namespace kvserve::engine {

class Detokenizer {
 public:
  // `continuation`: the ids continue earlier text (e.g. generated tokens after a prompt), so no
  // leading space is removed.
  explicit Detokenizer(const Tokenizer& tokenizer, bool continuation = false)
      : tokenizer_(tokenizer), strip_space_(!continuation && tokenizer.strips_leading_space()) {}

  // The text that token `id` completes (possibly empty).
  std::string Add(int32_t id);
  // Whatever is still held back (an incomplete UTF-8 sequence at the end of the stream, as
  // U+FFFD).
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  bool strip_space_;
  base::Utf8Stream utf8_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_DETOKENIZER_H_
