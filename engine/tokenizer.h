// Tokenizer: text <-> token ids for the vocabularies Llama-family models ship with.
//
// Implementations: SentencePiece-style merges by score (spm_tokenizer.h, GGUF
// tokenizer.ggml.model = "llama") and byte-level BPE (bpe_tokenizer.h, "gpt2"). Both reproduce
// llama.cpp's llama_tokenize(text, add_special, parse_special = true) id for id: the text of
// special tokens (types CONTROL, USER_DEFINED and UNKNOWN) is matched first, longest token
// first, and the model's algorithm runs on the text between matches.
//
// Ownership: a Tokenizer owns copies of its vocabulary; it does not keep the GgufFile it was
// loaded from. Thread-safety: immutable after loading; all methods are const and may be called
// concurrently.
#ifndef KVSERVE_ENGINE_TOKENIZER_H_
#define KVSERVE_ENGINE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/gguf.h"

namespace kvserve::engine {

// Token types as numbered in GGUF (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`. With `add_special_tokens`, BOS is prepended when the model asks for it
  // (add_bos()). Special-token text inside `text` (e.g. "<s>", "<|eot_id|>") becomes that token.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const = 0;

  // The bytes token `id` stands for: byte tokens give their byte, normal tokens their text
  // (with SPM's "▁" turned back into spaces, or byte-level BPE's characters back into bytes),
  // user-defined tokens their text verbatim, control and unknown tokens nothing. May be a
  // partial UTF-8 sequence. Out-of-range ids give nothing.
  virtual std::string TokenPiece(int32_t id) const = 0;

  // The pieces of `ids` concatenated; when the vocabulary prefixes text with a space on
  // encoding (strips_leading_space()), one leading space is removed from the first piece of a
  // token that is not a control or unknown token, so Decode(Encode(x)) == x for lossless x.
  // (llama.cpp's llama_detokenize differs only in that a leading BOS uses up the removal.)
  std::string Decode(absl::Span<const int32_t> ids) const;

  // True for control and unknown tokens: Decode renders them as nothing.
  bool IsSilent(int32_t id) const;

  // The token's text as stored in the vocabulary; "" for out-of-range ids.
  const std::string& TokenText(int32_t id) const;
  TokenType GetTokenType(int32_t id) const;

  int32_t vocab_size() const { return static_cast<int32_t>(texts_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 when the vocabulary has none
  // Tokens that end generation: tokenizer.ggml.eos_token_id, eot_token_id and eom_token_id.
  const absl::flat_hash_set<int32_t>& eos_ids() const { return eos_ids_; }
  bool IsEos(int32_t id) const { return eos_ids_.contains(id); }
  bool add_bos() const { return add_bos_; }
  bool strips_leading_space() const { return strips_leading_space_; }

 protected:
  std::vector<std::string> texts_;
  std::vector<TokenType> types_;
  int32_t bos_id_ = -1;
  absl::flat_hash_set<int32_t> eos_ids_;
  bool add_bos_ = false;
  bool strips_leading_space_ = false;
};

// Reads tokenizer.ggml.* from a GGUF file and builds the matching tokenizer. Errors name the
// missing or malformed key, or the unsupported tokenizer.ggml.model / tokenizer.ggml.pre.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const GgufFile& file);

// Reads a Hugging Face tokenizer.json (and, when `tokenizer_config_path` is not empty, its
// tokenizer_config.json for bos_token / eos_token / add_bos_token) and builds the same tokenizer
// LoadTokenizerFromGguf builds from a GGUF converted from those files. Supported: model BPE with a
// ByteLevel pre-tokenizer, alone (GPT-2 regex) or after a Split whose regex is Llama 3's or
// Qwen2's, or after Digits(individual_digits) (SmolLM) -> BpeTokenizer; and Llama-2-style BPE
// with byte_fallback and the Prepend/Replace("\u2581") normalizer -> SpmTokenizer, scored by merge
// rank. An NFC normalizer is accepted but not applied (llama.cpp does not apply it either). Errors
// name the file and the unsupported or malformed part.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromHfJson(
    const std::string& tokenizer_json_path, const std::string& tokenizer_config_path = "");

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_TOKENIZER_H_
