#include "server/models/text_codec.h"

#include "absl/strings/str_cat.h"

namespace kvserve::server {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

enum class Utf8Scan { kComplete, kIncomplete, kInvalid };

// Looks at the sequence starting at s[0]. kComplete sets *length; kIncomplete means s is a valid
// but unfinished prefix; kInvalid means s[0] can never start a character.
Utf8Scan ScanUtf8(absl::string_view s, size_t* length) {
  const auto b0 = static_cast<uint8_t>(s[0]);
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) {
    *length = 1;
    return Utf8Scan::kComplete;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return Utf8Scan::kInvalid;  // continuation byte, C0, C1, F5..FF
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= s.size()) return Utf8Scan::kIncomplete;
    const auto b = static_cast<uint8_t>(s[i]);
    const uint8_t min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) return Utf8Scan::kInvalid;
  }
  *length = need;
  return Utf8Scan::kComplete;
}

}  // namespace

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

std::string IncrementalDetokenizer::Add(absl::string_view bytes) {
  pending_.append(bytes.data(), bytes.size());
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    size_t length = 0;
    const Utf8Scan scan = ScanUtf8(absl::string_view(pending_).substr(i), &length);
    if (scan == Utf8Scan::kIncomplete) break;
    if (scan == Utf8Scan::kInvalid) {
      out += kReplacement;
      ++i;
    } else {
      out.append(pending_, i, length);
      i += length;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string out;
  if (!pending_.empty()) out = kReplacement;  // one unfinished sequence
  pending_.clear();
  return out;
}

std::string SanitizeUtf8(absl::string_view bytes) {
  IncrementalDetokenizer d;
  std::string out = d.Add(bytes);
  return out + d.Flush();
}

absl::StatusOr<std::vector<int32_t>> TokenizerCodec::Encode(absl::string_view text,
                                                            bool add_special_tokens) const {
  return tokenizer_->Encode(std::string_view(text.data(), text.size()), add_special_tokens);
}

std::string TokenizerCodec::name() const {
  return absl::StrCat("model tokenizer, ", tokenizer_->vocab_size(), " tokens");
}

}  // namespace kvserve::server
