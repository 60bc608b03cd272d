// TextCodec: what the server needs from a vocabulary — text to token ids, the bytes each id
// stands for, and which ids end a sequence. Token bytes become valid UTF-8 text by the rule of
// base/utf8.h (Utf8Stream, SanitizeUtf8).
//
// Implementations: ByteLevelCodec (the built-in demo model: ids 0..255 are bytes, then BOS and
// EOS). A model's own tokenizer (engine/tokenizer.h) plugs in through a small adapter with the
// same four calls.
//
// Ownership: codecs are immutable after construction. Thread-safety: all const methods may be
// called concurrently.
#ifndef KVSERVE_SERVER_MODELS_TEXT_CODEC_H_
#define KVSERVE_SERVER_MODELS_TEXT_CODEC_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/tokenizer.h"

namespace kvserve::server {

class TextCodec {
 public:
  virtual ~TextCodec() = default;

  // Token ids of `text`; with `add_special_tokens` the model's BOS (if any) comes first.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                                      bool add_special_tokens) const = 0;
  // The raw bytes token `id` stands for; may be part of a UTF-8 sequence; "" for control tokens
  // and ids outside the vocabulary.
  virtual std::string TokenPiece(int32_t id) const = 0;
  // Raw bytes of a whole id sequence (not necessarily valid UTF-8). Default: the pieces joined.
  virtual std::string Decode(absl::Span<const int32_t> ids) const;

  virtual int32_t vocab_size() const = 0;
  // An upper bound on the prompt bytes one token stands for, so that a prompt too long for any
  // context is refused before it is tokenized: the longest piece (and a special token's text),
  // with room for normalization.
  virtual int64_t max_prompt_bytes_per_token() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when there is none
  virtual absl::flat_hash_set<int32_t> eos_ids() const = 0;
  // For logs and ModelInfo: "byte-level", "llama (SentencePiece)", ...
  virtual std::string name() const = 0;
};

// The demo model's vocabulary: token b (0..255) is the byte b, then BOS = 256, EOS = 257.
// Every byte string round-trips: Decode(Encode(x, false)) == x.
class ByteLevelCodec final : public TextCodec {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int32_t kVocabSize = 258;

  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              bool add_special_tokens) const override;
  std::string TokenPiece(int32_t id) const override;
  int32_t vocab_size() const override { return kVocabSize; }
  int64_t max_prompt_bytes_per_token() const override { return 1; }
  int32_t bos_id() const override { return kBos; }
  absl::flat_hash_set<int32_t> eos_ids() const override { return {kEos}; }
  std::string name() const override { return "byte-level"; }
};

// For model files whose tokenizer this build cannot load: requests must send token ids, and
// output text is empty (token ids are still streamed).
class TokenIdsOnlyCodec final : public TextCodec {
 public:
  TokenIdsOnlyCodec(int32_t vocab_size, int32_t bos_id, absl::flat_hash_set<int32_t> eos_ids)
      : vocab_size_(vocab_size), bos_id_(bos_id), eos_ids_(std::move(eos_ids)) {}

  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              bool add_special_tokens) const override;
  std::string TokenPiece(int32_t) const override { return ""; }
  int32_t vocab_size() const override { return vocab_size_; }
  int64_t max_prompt_bytes_per_token() const override { return 1; }  // text is refused anyway
  int32_t bos_id() const override { return bos_id_; }
  absl::flat_hash_set<int32_t> eos_ids() const override { return eos_ids_; }
  std::string name() const override { return "token ids only (no tokenizer)"; }

 private:
  int32_t vocab_size_;
  int32_t bos_id_;
  absl::flat_hash_set<int32_t> eos_ids_;
};

// A model's own tokenizer (SentencePiece or byte-level BPE, from GGUF or tokenizer.json). Pieces
// keep the SPM leading space: generated text continues the prompt.
class TokenizerCodec final : public TextCodec {
 public:
  // EOS: the tokenizer's own set.
  explicit TokenizerCodec(std::unique_ptr<engine::Tokenizer> tokenizer)
      : TokenizerCodec(std::move(tokenizer), {}) {}
  // EOS: `eos_ids` (e.g. a Hugging Face folder's generation_config.json plus the tokenizer's);
  // empty: the tokenizer's own set.
  TokenizerCodec(std::unique_ptr<engine::Tokenizer> tokenizer, absl::flat_hash_set<int32_t> eos_ids);
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              bool add_special_tokens) const override;
  std::string TokenPiece(int32_t id) const override { return tokenizer_->TokenPiece(id); }
  int32_t vocab_size() const override { return tokenizer_->vocab_size(); }
  int64_t max_prompt_bytes_per_token() const override { return max_prompt_bytes_per_token_; }
  int32_t bos_id() const override { return tokenizer_->bos_id(); }
  absl::flat_hash_set<int32_t> eos_ids() const override { return eos_ids_; }
  std::string name() const override;

 private:
  std::unique_ptr<engine::Tokenizer> tokenizer_;
  absl::flat_hash_set<int32_t> eos_ids_;
  int64_t max_prompt_bytes_per_token_ = 1;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_TEXT_CODEC_H_
