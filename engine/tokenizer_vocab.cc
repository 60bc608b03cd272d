#include "engine/tokenizer_vocab.h"

#include <algorithm>
#include <list>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kvserve::engine {
namespace {

// Optional integer key: -1 when absent.
absl::StatusOr<int32_t> OptionalTokenId(const GgufFile& file, std::string_view key, int32_t n) {
  if (file.FindMetadata(key) == nullptr) return -1;
  absl::StatusOr<int64_t> v = file.GetInt(key);
  if (!v.ok()) return v.status();
  // llama.cpp disables ids outside the vocabulary rather than failing.
  if (*v < 0 || *v >= n) return -1;
  return static_cast<int32_t>(*v);
}

absl::StatusOr<std::optional<bool>> OptionalBool(const GgufFile& file, std::string_view key) {
  if (file.FindMetadata(key) == nullptr) return std::optional<bool>();
  absl::StatusOr<bool> v = file.GetBool(key);
  if (!v.ok()) return v.status();
  return std::optional<bool>(*v);
}

}  // namespace

absl::StatusOr<GgufVocabulary> ReadGgufVocabulary(const GgufFile& file) {
  GgufVocabulary v;
  absl::StatusOr<std::string> model = file.GetString("tokenizer.ggml.model");
  if (!model.ok()) return model.status();
  v.model = *model;
  if (file.FindMetadata("tokenizer.ggml.pre") != nullptr) {
    absl::StatusOr<std::string> pre = file.GetString("tokenizer.ggml.pre");
    if (!pre.ok()) return pre.status();
    v.pre = *pre;
  }
  absl::StatusOr<std::vector<std::string>> texts = file.GetStringArray("tokenizer.ggml.tokens");
  if (!texts.ok()) return texts.status();
  v.texts = std::move(*texts);
  const size_t n = v.texts.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer.ggml.tokens is empty");
  for (size_t i = 0; i < n; ++i) {
    if (v.texts[i].empty()) v.texts[i] = absl::StrCat("[EMPTY_", i, "]");
  }
  v.types.assign(n, TokenType::kNormal);
  if (file.FindMetadata("tokenizer.ggml.token_type") != nullptr) {
    absl::StatusOr<std::vector<int64_t>> types = file.GetIntArray("tokenizer.ggml.token_type");
    if (!types.ok()) return types.status();
    if (types->size() < n) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.token_type has ",
                                                     types->size(), " entries for ", n, " tokens"));
    }
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      v.types[i] = (t >= 1 && t <= 6) ? static_cast<TokenType>(t) : TokenType::kUndefined;
    }
  }
  v.scores.assign(n, 0.0f);
  if (file.FindMetadata("tokenizer.ggml.scores") != nullptr) {
    absl::StatusOr<std::vector<float>> scores = file.GetFloatArray("tokenizer.ggml.scores");
    if (!scores.ok()) return scores.status();
    if (scores->size() < n) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.scores has ", scores->size(),
                                                     " entries for ", n, " tokens"));
    }
    std::copy(scores->begin(), scores->begin() + n, v.scores.begin());
  }
  if (file.FindMetadata("tokenizer.ggml.merges") != nullptr) {
    absl::StatusOr<std::vector<std::string>> merges = file.GetStringArray("tokenizer.ggml.merges");
    if (!merges.ok()) return merges.status();
    v.merges = std::move(*merges);
  }
  const int32_t nt = static_cast<int32_t>(n);
  struct IdKey {
    const char* key;
    int32_t* out;
  };
  int32_t eot = -1, eom = -1;
  for (const IdKey& k :
       {IdKey{"tokenizer.ggml.bos_token_id", &v.bos_id},
        IdKey{"tokenizer.ggml.eos_token_id", &v.eos_id},
        IdKey{"tokenizer.ggml.unknown_token_id", &v.unk_id},
        IdKey{"tokenizer.ggml.eot_token_id", &eot}, IdKey{"tokenizer.ggml.eom_token_id", &eom}}) {
    absl::StatusOr<int32_t> id = OptionalTokenId(file, k.key, nt);
    if (!id.ok()) return id.status();
    *k.out = *id;
  }
  for (int32_t id : {v.eos_id, eot, eom}) {
    if (id >= 0) v.eos_ids.insert(id);
  }
  absl::StatusOr<std::optional<bool>> add_bos = OptionalBool(file, "tokenizer.ggml.add_bos_token");
  if (!add_bos.ok()) return add_bos.status();
  v.add_bos = *add_bos;
  absl::StatusOr<std::optional<bool>> prefix =
      OptionalBool(file, "tokenizer.ggml.add_space_prefix");
  if (!prefix.ok()) return prefix.status();
  v.add_space_prefix = *prefix;
  return v;
}

TokenIndex BuildTokenIndex(const std::vector<std::string>& texts) {
  TokenIndex index;
  index.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) index[texts[i]] = static_cast<int32_t>(i);
  return index;
}

int32_t FindToken(const TokenIndex& index, std::string_view text) {
  auto it = index.find(absl::string_view(text.data(), text.size()));
  return it == index.end() ? -1 : it->second;
}

SpecialTokenSplitter::SpecialTokenSplitter(const std::vector<std::string>& texts,
                                           const std::vector<TokenType>& types) {
  for (size_t i = 0; i < texts.size(); ++i) {
    const TokenType t = types[i];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      specials_.emplace_back(texts[i], static_cast<int32_t>(i));
      first_byte_[static_cast<uint8_t>(texts[i][0])] = true;
    }
  }
  // Longest first; equal lengths keep id order (llama.cpp's unstable sort leaves them in some
  // order; they can only differ on overlapping equal-length tokens).
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

std::vector<TextFragment> SpecialTokenSplitter::Split(std::string_view text) const {
  std::vector<TextFragment> out;
  if (text.empty()) return out;
  out.push_back(TextFragment{-1, 0, text.size()});
  bool any = false;
  for (char c : text) {
    if (first_byte_[static_cast<uint8_t>(c)]) {
      any = true;
      break;
    }
  }
  if (!any) return out;
  std::list<TextFragment> fragments(out.begin(), out.end());
  for (const auto& [special, id] : specials_) {
    for (auto it = fragments.begin(); it != fragments.end(); ++it) {
      if (it->token >= 0) continue;
      // Split this raw fragment at every occurrence of `special`, left to right.
      size_t begin = it->begin;
      const size_t end = it->begin + it->length;
      const std::string_view window = text.substr(0, end);
      size_t match = window.find(special, begin);
      if (match == std::string_view::npos) continue;
      auto insert_at = std::next(it);
      while (match != std::string_view::npos) {
        if (match > begin) fragments.insert(insert_at, TextFragment{-1, begin, match - begin});
        fragments.insert(insert_at, TextFragment{id, match, special.size()});
        begin = match + special.size();
        match = window.find(special, begin);
      }
      if (begin < end) fragments.insert(insert_at, TextFragment{-1, begin, end - begin});
      fragments.erase(it);
      it = std::prev(insert_at);  // continue after the pieces just inserted
    }
  }
  return std::vector<TextFragment>(fragments.begin(), fragments.end());
}

}  // namespace kvserve::engine
