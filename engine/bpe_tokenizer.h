// BpeTokenizer: byte-level BPE as llama.cpp performs it for GGUF tokenizer.ggml.model = "gpt2"
// (Llama 3, Qwen2, SmolLM): special tokens are split off, the rest is pre-tokenized into words
// (bpe_pretokenizer.h), each word's bytes are shown as GPT-2's printable code points, and the
// adjacent pair with the lowest merge rank is merged until none applies. With ignore_merges
// (Llama 3), a word that is itself a token is taken whole.
//
// Thread-safety and ownership: see Tokenizer.
#ifndef KVSERVE_ENGINE_BPE_TOKENIZER_H_
#define KVSERVE_ENGINE_BPE_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/bpe_pretokenizer.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_vocab.h"

namespace kvserve::engine {

class BpeTokenizer : public Tokenizer {
 public:
  // Errors: unsupported tokenizer.ggml.pre, missing merges.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(GgufVocabulary vocab);

  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override;
  std::string TokenPiece(int32_t id) const override;

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;  // -1 when left+right is not itself a token
  };

  BpeTokenizer(GgufVocabulary vocab, BpePreTokenizer pre);
  void EncodeText(std::string_view text, std::vector<int32_t>* out) const;
  // Merges one byte-encoded word, appending its ids.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  BpePreTokenizer pre_;
  bool ignore_merges_ = false;
  TokenIndex index_;
  SpecialTokenSplitter splitter_;
  // (left id << 32 | right id) -> merge. Pairs naming a non-token are not representable and are
  // dropped (they cannot occur in a consistent vocabulary).
  absl::flat_hash_map<uint64_t, Merge> merges_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_BPE_TOKENIZER_H_
