// SpmTokenizer: SentencePiece-style tokenization as llama.cpp performs it for GGUF
// tokenizer.ggml.model = "llama" (Llama 2, TinyLlama, Mistral): spaces become "▁" (with one
// prepended to text that starts the input or follows a special token), then adjacent symbols
// are merged greedily by the score of the token they form, highest first; characters with no
// token fall back to byte tokens <0xXX>.
//
// Thread-safety and ownership: see Tokenizer.
#ifndef KVSERVE_ENGINE_SPM_TOKENIZER_H_
#define KVSERVE_ENGINE_SPM_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_vocab.h"

namespace kvserve::engine {

class SpmTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<SpmTokenizer>> Create(GgufVocabulary vocab);

  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override;
  std::string TokenPiece(int32_t id) const override;

 private:
  SpmTokenizer(GgufVocabulary vocab);
  // Tokenizes already-escaped text (spaces as "▁"), appending to `out`.
  void EncodeEscaped(std::string_view text, std::vector<int32_t>* out) const;
  void AppendByteTokens(std::string_view bytes, std::vector<int32_t>* out) const;

  std::vector<float> scores_;
  TokenIndex index_;
  SpecialTokenSplitter splitter_;
  int32_t byte_tokens_[256];  // <0xXX> or the single-byte token; -1 when neither exists
  int32_t unk_id_ = -1;
  bool add_space_prefix_ = true;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_SPM_TOKENIZER_H_
