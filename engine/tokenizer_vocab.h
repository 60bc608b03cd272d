// Pieces the tokenizer algorithms share: the vocabulary as read from GGUF, and the splitting of
// text around special tokens that happens before any model algorithm runs.
//
// Thread-safety: SpecialTokenSplitter is immutable after construction (const methods may be
// called concurrently). Ownership: everything is held by value.
#ifndef KVSERVE_ENGINE_TOKENIZER_VOCAB_H_
#define KVSERVE_ENGINE_TOKENIZER_VOCAB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

namespace kvserve::engine {

// tokenizer.ggml.* of one GGUF file.
struct GgufVocabulary {
  std::string model;                // tokenizer.ggml.model: "llama", "gpt2"
  std::string pre;                  // tokenizer.ggml.pre ("" when absent)
  std::vector<std::string> texts;   // tokenizer.ggml.tokens (empty ones renamed like llama.cpp)
  std::vector<TokenType> types;     // tokenizer.ggml.token_type, kNormal when absent
  std::vector<float> scores;        // tokenizer.ggml.scores, zeros when absent
  std::vector<std::string> merges;  // tokenizer.ggml.merges ("left right")
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  absl::flat_hash_set<int32_t> eos_ids;  // eos, eot and eom ids present in the file
  std::optional<bool> add_bos;           // tokenizer.ggml.add_bos_token
  std::optional<bool> add_space_prefix;  // tokenizer.ggml.add_space_prefix
  // BPE: take a pre-tokenized word whole when it is a token (tokenizer.json model.ignore_merges;
  // GGUF has no key, so it defaults to on for the Llama 3 pre-tokenizer, as in llama.cpp).
  std::optional<bool> ignore_merges;
};

absl::StatusOr<GgufVocabulary> ReadGgufVocabulary(const GgufFile& file);

// llama.cpp's by-text promotion of well-known special tokens (end-of-turn, fill-in-the-middle
// markers) to CONTROL, adding the end-of-generation ones to eos_ids. Every loader applies it.
void PromoteSpecialTokensByText(GgufVocabulary* v);

// text -> id, the later id winning for duplicate texts (as in llama.cpp).
using TokenIndex = absl::flat_hash_map<std::string, int32_t>;
TokenIndex BuildTokenIndex(const std::vector<std::string>& texts);
// -1 when absent.
int32_t FindToken(const TokenIndex& index, std::string_view text);

// A piece of input: either the special token `token` (>= 0) or the raw text
// [begin, begin + length) of the input when token == -1.
struct TextFragment {
  int32_t token = -1;
  size_t begin = 0;
  size_t length = 0;
};

// Finds special tokens (CONTROL, USER_DEFINED, UNKNOWN) in text the way llama.cpp's
// tokenizer_st_partition does with parse_special: tokens are tried longest first, each splitting
// every remaining raw-text fragment at all its left-to-right occurrences.
class SpecialTokenSplitter {
 public:
  SpecialTokenSplitter(const std::vector<std::string>& texts, const std::vector<TokenType>& types);
  // Fragments of `text` in order; an empty text gives no fragments.
  std::vector<TextFragment> Split(std::string_view text) const;

 private:
  std::vector<std::pair<std::string, int32_t>> specials_;  // longest text first
  bool first_byte_[256] = {};                              // some special token starts with it
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_TOKENIZER_VOCAB_H_
