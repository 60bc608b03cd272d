// Detokenizer: turns a stream of token ids into text deltas for streaming responses.
//
// Each Add() returns the bytes that became final: never part of a UTF-8 character (bytes of an
// incomplete character wait for the token that completes them), with the SPM leading space
// handled as Tokenizer::Decode handles it. Add() deltas followed by Finish() concatenate to
// exactly tokenizer.Decode(all ids), byte for byte (malformed UTF-8 is passed through once it
// can no longer become a character).
//
// Ownership: borrows the Tokenizer, which must outlive it. Thread-safety: not thread-safe; one
// Detokenizer per stream.
#ifndef KVSERVE_ENGINE_DETOKENIZER_H_
#define KVSERVE_ENGINE_DETOKENIZER_H_

#include <cstdint>
#include <string>

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
  // Whatever is still held back (an incomplete UTF-8 sequence at the end of the stream).
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  bool strip_space_;
  std::string pending_;  // bytes of an incomplete UTF-8 character
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_DETOKENIZER_H_
