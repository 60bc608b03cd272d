// What the fuzzers check about a tokenizer once one has loaded (from a fuzzed GGUF file or
// tokenizer.json, or a fixed vocabulary fed fuzzed text): Encode gives ids inside the vocabulary,
// and the streamed Detokenizer agrees with Decode (its documented contract: the deltas and Finish
// concatenate to SanitizeUtf8(Decode(ids))), also for ids outside the vocabulary.
//
// Thread-safety: pure.
#ifndef KVSERVE_TESTS_FUZZ_TOKENIZER_CHECKS_H_
#define KVSERVE_TESTS_FUZZ_TOKENIZER_CHECKS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/tokenizer.h"

namespace kvserve::fuzz {

// Encodes `text` (with and without special tokens), checks the ids, then checks the
// Detokenizer against Decode on those ids followed by the first ids of the vocabulary and two
// out-of-range ones. Returns the ids of Encode(text, false). Aborts on a violated property.
std::vector<int32_t> CheckTokenizer(const engine::Tokenizer& tokenizer, std::string_view text);

// The Detokenizer against Decode for `ids` (any values), with and without `continuation`.
void CheckDetokenizer(const engine::Tokenizer& tokenizer, const std::vector<int32_t>& ids);

}  // namespace kvserve::fuzz

#endif  // KVSERVE_TESTS_FUZZ_TOKENIZER_CHECKS_H_
