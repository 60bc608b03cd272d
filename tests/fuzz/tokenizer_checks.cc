#include "tests/fuzz/tokenizer_checks.h"

#include <string>

#include "base/utf8.h"
#include "engine/detokenizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace kvserve::fuzz {

void CheckDetokenizer(const engine::Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  engine::Detokenizer detokenizer(tokenizer);
  std::string streamed;
  for (const int32_t id : ids) streamed += detokenizer.Add(id);
  streamed += detokenizer.Finish();
  FuzzCheck(streamed == base::SanitizeUtf8(tokenizer.Decode(ids)),
            "streamed detokenization differs from SanitizeUtf8(Decode(ids))");
  // A continuation never strips the leading space: it is the pieces of the ids Decode does not
  // leave out, joined.
  engine::Detokenizer continuation(tokenizer, /*continuation=*/true);
  std::string pieces;
  std::string continued;
  for (const int32_t id : ids) {
    if (!tokenizer.IsSilent(id)) pieces += tokenizer.TokenPiece(id);
    continued += continuation.Add(id);
  }
  continued += continuation.Finish();
  FuzzCheck(continued == base::SanitizeUtf8(pieces),
            "a continuation's detokenization differs from its pieces");
}

std::vector<int32_t> CheckTokenizer(const engine::Tokenizer& tokenizer, std::string_view text) {
  const std::vector<int32_t> plain = tokenizer.Encode(text, /*add_special_tokens=*/false);
  const std::vector<int32_t> special = tokenizer.Encode(text, /*add_special_tokens=*/true);
  for (const std::vector<int32_t>* ids : {&plain, &special}) {
    for (const int32_t id : *ids) {
      FuzzCheck(id >= 0 && id < tokenizer.vocab_size(), "Encode gave an id outside the vocabulary");
    }
  }
  std::vector<int32_t> ids = special;
  for (int32_t id = 0; id < tokenizer.vocab_size() && id < 48; ++id) ids.push_back(id);
  ids.push_back(-1);
  ids.push_back(tokenizer.vocab_size());
  CheckDetokenizer(tokenizer, ids);
  return plain;
}

}  // namespace kvserve::fuzz
