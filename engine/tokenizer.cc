#include "engine/tokenizer.h"

#include "absl/strings/str_cat.h"
#include "engine/bpe_tokenizer.h"
#include "engine/spm_tokenizer.h"
#include "engine/tokenizer_vocab.h"

namespace kvserve::engine {

// llama.cpp recognises some special tokens by their text, whatever type the file gives them:
// it makes them CONTROL (so they are matched in text and decode to nothing) and the
// end-of-generation ones join its EOG set. Mirrored here so ids match llama.cpp's.
void PromoteSpecialTokensByText(GgufVocabulary* v) {
  static const absl::flat_hash_set<std::string>* const kEndOfGeneration =
      new absl::flat_hash_set<std::string>{"<|eot_id|>",
                                           "<|im_end|>",
                                           "<|end|>",
                                           "<|return|>",
                                           "<|call|>",
                                           "<|flush|>",
                                           "<|calls|>",
                                           "<end_of_turn>",
                                           "<|endoftext|>",
                                           "</s>",
                                           "<|eom_id|>",
                                           "<EOT>",
                                           "_<EOT>",
                                           "[EOT]",
                                           "[EOS]",
                                           "<|end_of_text|>",
                                           "<end_of_utterance>",
                                           "<eos>",
                                           "<turn|>",
                                           "<|tool_response>",
                                           "<\xEF\xBD\x9C"
                                           "end\xE2\x96\x81"
                                           "of\xE2\x96\x81"
                                           "sentence\xEF\xBD\x9C>",
                                           "[e~["};
  // Fill-in-the-middle markers: CONTROL; pad, repo and file separators also end generation.
  static const absl::flat_hash_set<std::string>* const kFimMarkers =
      new absl::flat_hash_set<std::string>{"<|fim_prefix|>",
                                           "<fim-prefix>",
                                           "<fim_prefix>",
                                           "<PRE>",
                                           "\xE2\x96\x81<PRE>",
                                           "<|code_prefix|>",
                                           "<|prefix|>",
                                           "<|fim_suffix|>",
                                           "<fim-suffix>",
                                           "<fim_suffix>",
                                           "<SUF>",
                                           "\xE2\x96\x81<SUF>",
                                           "<|code_suffix|>",
                                           "<|suffix|>",
                                           "<|fim_middle|>",
                                           "<fim-middle>",
                                           "<fim_middle>",
                                           "<MID>",
                                           "\xE2\x96\x81<MID>",
                                           "<|code_middle|>",
                                           "<|middle|>"};
  static const absl::flat_hash_set<std::string>* const kFimEndOfGeneration =
      new absl::flat_hash_set<std::string>{
          "<|fim_pad|>",   "<fim-pad>",  "<fim_pad>", "<PAD>",      "[PAD]",       "<|fim_repo|>",
          "<|repo_name|>", "<fim-repo>", "<REPO>",    "<reponame>", "<|file_sep|>"};
  for (size_t i = 0; i < v->texts.size(); ++i) {
    const std::string& t = v->texts[i];
    const bool eog = kEndOfGeneration->contains(t) || kFimEndOfGeneration->contains(t);
    if (eog || kFimMarkers->contains(t)) v->types[i] = TokenType::kControl;
    if (eog) v->eos_ids.insert(static_cast<int32_t>(i));
    // gpt-oss's structural tokens are always rendered.
    if (t == "<|channel|>" || t == "<|message|>" || t == "<|start|>" || t == "<|constrain|>") {
      v->types[i] = TokenType::kUserDefined;
    }
  }
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string text;
  bool strip_space = strips_leading_space_;
  for (int32_t id : ids) {
    if (IsSilent(id)) continue;
    std::string piece = TokenPiece(id);
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    text += piece;
  }
  return text;
}

bool Tokenizer::IsSilent(int32_t id) const {
  const TokenType t = GetTokenType(id);
  return t == TokenType::kControl || t == TokenType::kUnknown;
}

const std::string& Tokenizer::TokenText(int32_t id) const {
  static const std::string* const kEmpty = new std::string;
  return id >= 0 && id < vocab_size() ? texts_[id] : *kEmpty;
}

TokenType Tokenizer::GetTokenType(int32_t id) const {
  return id >= 0 && id < vocab_size() ? types_[id] : TokenType::kUndefined;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const GgufFile& file) {
  absl::StatusOr<GgufVocabulary> vocab = ReadGgufVocabulary(file);
  if (!vocab.ok()) return vocab.status();
  PromoteSpecialTokensByText(&*vocab);
  if (vocab->model == "llama") {
    absl::StatusOr<std::unique_ptr<SpmTokenizer>> t = SpmTokenizer::Create(*std::move(vocab));
    if (!t.ok()) return t.status();
    return std::unique_ptr<Tokenizer>(std::move(*t));
  }
  if (vocab->model == "gpt2") {
    absl::StatusOr<std::unique_ptr<BpeTokenizer>> t = BpeTokenizer::Create(*std::move(vocab));
    if (!t.ok()) return t.status();
    return std::unique_ptr<Tokenizer>(std::move(*t));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported tokenizer.ggml.model '", vocab->model,
                                               "' (kvserve supports 'llama' and 'gpt2')"));
}

}  // namespace kvserve::engine
