#include "engine/spm_tokenizer.h"

#include <cstdio>
#include <queue>

#include "absl/strings/str_replace.h"
#include "engine/unicode.h"

namespace kvserve::engine {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 "▁"

struct Symbol {
  int prev;
  int next;
  size_t begin;   // into the escaped text
  size_t length;  // 0 once merged into its left neighbour
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t length;
};

// Highest score first; on ties the leftmost pair (llama.cpp's llm_bigram_spm order).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<SpmTokenizer>> SpmTokenizer::Create(GgufVocabulary vocab) {
  return std::unique_ptr<SpmTokenizer>(new SpmTokenizer(std::move(vocab)));
}

SpmTokenizer::SpmTokenizer(GgufVocabulary vocab)
    : scores_(std::move(vocab.scores)),
      index_(BuildTokenIndex(vocab.texts)),
      splitter_(vocab.texts, vocab.types),
      unk_id_(vocab.unk_id),
      add_space_prefix_(vocab.add_space_prefix.value_or(true)) {
  texts_ = std::move(vocab.texts);
  types_ = std::move(vocab.types);
  bos_id_ = vocab.bos_id;
  eos_ids_ = std::move(vocab.eos_ids);
  add_bos_ = vocab.add_bos.value_or(true) && bos_id_ >= 0;
  strips_leading_space_ = add_space_prefix_;
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    int32_t id = FindToken(index_, hex);
    if (id < 0) id = FindToken(index_, std::string(1, static_cast<char>(b)));
    byte_tokens_[b] = id;
  }
}

std::vector<int32_t> SpmTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  if (add_special_tokens && add_bos_) out.push_back(bos_id_);
  bool after_special = true;  // the start of the input counts as following a special token
  std::string escaped;
  for (const TextFragment& f : splitter_.Split(text)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    escaped.clear();
    if (add_space_prefix_ && after_special) escaped.append(kSpaceMark);
    for (char c : text.substr(f.begin, f.length)) {
      if (c == ' ') {
        escaped.append(kSpaceMark);
      } else {
        escaped.push_back(c);
      }
    }
    EncodeEscaped(escaped, &out);
    after_special = false;
  }
  return out;
}

void SpmTokenizer::EncodeEscaped(std::string_view text, std::vector<int32_t>* out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t offset = 0; offset < text.size();) {
    const size_t len = std::min<size_t>(Utf8SequenceLength(static_cast<uint8_t>(text[offset])),
                                        text.size() - offset);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back(Symbol{index - 1, offset + len == text.size() ? -1 : index + 1, offset, len});
    offset += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  const auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const size_t length = symbols[left].length + symbols[right].length;
    const int32_t id = FindToken(index_, text.substr(symbols[left].begin, length));
    if (id < 0) return;
    queue.push(Bigram{left, right, scores_[id], length});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale: one side was merged away since this pair was queued.
    if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }
  if (symbols.empty()) return;
  for (int i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].begin, symbols[i].length);
    // A merged symbol is always a token; a lone character may not be.
    const int32_t id = FindToken(index_, piece);
    if (id >= 0) {
      out->push_back(id);
    } else {
      AppendByteTokens(piece, out);
    }
  }
}

void SpmTokenizer::AppendByteTokens(std::string_view bytes, std::vector<int32_t>* out) const {
  for (char c : bytes) {
    const int32_t id = byte_tokens_[static_cast<uint8_t>(c)];
    // llama.cpp aborts here; a vocabulary without byte tokens gets the unknown token instead.
    if (id >= 0) {
      out->push_back(id);
    } else if (unk_id_ >= 0) {
      out->push_back(unk_id_);
    }
  }
}

std::string SpmTokenizer::TokenPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  const std::string& text = texts_[id];
  switch (types_[id]) {
    case TokenType::kNormal:
      return absl::StrReplaceAll(text,
                                 {{absl::string_view(kSpaceMark.data(), kSpaceMark.size()), " "}});
    case TokenType::kUserDefined:
      return text;
    case TokenType::kByte: {
      // "<0xXX>"
      if (text.size() == 6) {
        return std::string(1,
                           static_cast<char>(std::strtol(text.substr(3, 2).c_str(), nullptr, 16)));
      }
      return "";
    }
    default:
      return "";  // control, unknown, unused, undefined
  }
}

}  // namespace kvserve::engine
