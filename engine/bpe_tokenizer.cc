#include "engine/bpe_tokenizer.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "engine/unicode.h"

namespace kvserve::engine {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct Symbol {
  int prev;
  int next;
  size_t begin;
  size_t length;  // 0 once merged into its left neighbour
  int32_t id;     // token of the symbol's text, -1 if none
};

struct Bigram {
  int left;
  int right;
  int32_t rank;
  int32_t left_id;
  int32_t right_id;
};

// Lowest rank first; on ties the leftmost pair (llama.cpp's llm_bigram_bpe order).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(GgufVocabulary vocab) {
  absl::StatusOr<BpePreTokenizer> pre = BpePreTokenizerFromName(vocab.pre);
  if (!pre.ok()) return pre.status();
  if (vocab.merges.empty()) {
    return absl::InvalidArgumentError("byte-level BPE vocabulary without tokenizer.ggml.merges");
  }
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(vocab), *pre));
}

BpeTokenizer::BpeTokenizer(GgufVocabulary vocab, BpePreTokenizer pre)
    : pre_(pre),
      ignore_merges_(vocab.ignore_merges.value_or(pre == BpePreTokenizer::kLlama3)),
      index_(BuildTokenIndex(vocab.texts)),
      splitter_(vocab.texts, vocab.types) {
  texts_ = std::move(vocab.texts);
  types_ = std::move(vocab.types);
  bos_id_ = vocab.bos_id;
  eos_ids_ = std::move(vocab.eos_ids);
  add_bos_ = vocab.add_bos.value_or(pre == BpePreTokenizer::kLlama3) && bos_id_ >= 0;
  strips_leading_space_ = false;
  merges_.reserve(vocab.merges.size());
  for (size_t i = 0; i < vocab.merges.size(); ++i) {
    const std::string& m = vocab.merges[i];
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos) continue;
    const std::string_view first = std::string_view(m).substr(0, space);
    const std::string_view second = std::string_view(m).substr(space + 1);
    const int32_t left = FindToken(index_, first);
    const int32_t right = FindToken(index_, second);
    if (left < 0 || right < 0) continue;
    const int32_t merged = FindToken(index_, absl::StrCat(std::string(first), std::string(second)));
    merges_.emplace(PairKey(left, right), Merge{static_cast<int32_t>(i), merged});  // first wins
  }
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  if (add_special_tokens && add_bos_) out.push_back(bos_id_);
  for (const TextFragment& f : splitter_.Split(text)) {
    if (f.token >= 0) {
      out.push_back(f.token);
    } else {
      EncodeText(text.substr(f.begin, f.length), &out);
    }
  }
  return out;
}

void BpeTokenizer::EncodeText(std::string_view text, std::vector<int32_t>* out) const {
  const std::vector<uint32_t> cpts = DecodeUtf8(text);
  const std::vector<size_t> words = PreTokenize(pre_, cpts);
  std::string raw, encoded;
  size_t start = 0;
  for (size_t len : words) {
    // Re-encode from code points (malformed input became U+FFFD), then show each byte.
    raw.clear();
    for (size_t i = start; i < start + len; ++i) AppendUtf8(cpts[i], &raw);
    start += len;
    encoded.clear();
    for (char c : raw) encoded += ByteToUnicode(static_cast<uint8_t>(c));
    EncodeWord(encoded, out);
  }
}

void BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    const int32_t id = FindToken(index_, word);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t offset = 0; offset < word.size();) {
    const size_t len = std::min<size_t>(Utf8SequenceLength(static_cast<uint8_t>(word[offset])),
                                        word.size() - offset);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back(Symbol{index - 1, offset + len == word.size() ? -1 : index + 1, offset, len,
                             FindToken(index_, word.substr(offset, len))});
    offset += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  const auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const int32_t l = symbols[left].id, r = symbols[right].id;
    if (l < 0 || r < 0) return;
    auto it = merges_.find(PairKey(l, r));
    if (it == merges_.end()) return;
    queue.push(Bigram{left, right, it->second.rank, l, r});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale: either side changed since this pair was queued.
    if (left.length == 0 || right.length == 0 || left.id != b.left_id || right.id != b.right_id) {
      continue;
    }
    left.length += right.length;
    left.id = merges_.find(PairKey(b.left_id, b.right_id))->second.merged_id;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }
  for (int i = 0; i != -1 && !symbols.empty(); i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out->push_back(s.id);
      continue;
    }
    // No token for this text: llama.cpp tries each raw byte as a token of its own.
    for (char c : word.substr(s.begin, s.length)) {
      const int32_t id = FindToken(index_, std::string_view(&c, 1));
      if (id >= 0) out->push_back(id);
    }
  }
}

std::string BpeTokenizer::TokenPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  const std::string& text = texts_[id];
  switch (types_[id]) {
    case TokenType::kNormal: {
      std::string bytes;
      for (uint32_t cp : DecodeUtf8(text)) {
        const int b = UnicodeToByte(cp);
        if (b >= 0) {
          bytes.push_back(static_cast<char>(b));
        } else {
          AppendUtf8(cp, &bytes);  // not a byte-level character: keep it as text
        }
      }
      return bytes;
    }
    case TokenType::kUserDefined:
      return text;
    case TokenType::kByte:
      if (text.size() == 6) {
        return std::string(1,
                           static_cast<char>(std::strtol(text.substr(3, 2).c_str(), nullptr, 16)));
      }
      return "";
    default:
      return "";
  }
}

}  // namespace kvserve::engine
