#include "server/models/text_codec.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kvserve::server {
std::string TextCodec::Decode(absl::Span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) out += TokenPiece(id);
  return out;
}

absl::StatusOr<std::vector<int32_t>> ByteLevelCodec::Encode(absl::string_view text,
                                                            bool add_special_tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 1);
  if (add_special_tokens) ids.push_back(kBos);
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

std::string ByteLevelCodec::TokenPiece(int32_t id) const {
  if (id < 0 || id > 255) return "";
  return std::string(1, static_cast<char>(id));
}

absl::StatusOr<std::vector<int32_t>> TokenIdsOnlyCodec::Encode(absl::string_view, bool) const {
  return absl::UnimplementedError(
      "this server has no tokenizer for its model; send prompt_token_ids instead of text");
}

TokenizerCodec::TokenizerCodec(std::unique_ptr<engine::Tokenizer> tokenizer,
                               absl::flat_hash_set<int32_t> eos_ids)
    : tokenizer_(std::move(tokenizer)),
      eos_ids_(eos_ids.empty() ? tokenizer_->eos_ids() : std::move(eos_ids)) {
  // Special tokens' pieces are empty but their text ("<|start_header_id|>") is one token, and
  // normalization may shrink text a little (NFKC): a generous floor and factor.
  constexpr int64_t kSpecialTokenText = 64;
  constexpr int64_t kNormalization = 4;
  int64_t longest = kSpecialTokenText;
  for (int32_t id = 0; id < tokenizer_->vocab_size(); ++id) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(tokenizer_->TokenPiece(id).size()));
  }
  max_prompt_bytes_per_token_ = longest * kNormalization;
}

absl::StatusOr<std::vector<int32_t>> TokenizerCodec::Encode(absl::string_view text,
                                                            bool add_special_tokens) const {
  return tokenizer_->Encode(std::string_view(text.data(), text.size()), add_special_tokens);
}

std::string TokenizerCodec::name() const {
  return absl::StrCat("model tokenizer, ", tokenizer_->vocab_size(), " tokens");
}

}  // namespace kvserve::server
