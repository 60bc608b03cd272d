#include "engine/bpe_pretokenizer.h"

#include "absl/strings/str_cat.h"
#include "engine/unicode.h"

namespace kvserve::engine {
namespace {

constexpr uint32_t kOutOfRange = 0xFFFFFFFF;

struct Classified {
  const std::vector<uint32_t>& cpts;
  std::vector<CodepointClass> classes;
};

uint32_t AsciiLower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Runs `split_word(begin, end, emit)` over each current word; `emit(end)` closes a new word at
// code point index `end`.
template <typename SplitWord>
std::vector<size_t> Refine(const std::vector<size_t>& words, SplitWord split_word) {
  std::vector<size_t> out;
  out.reserve(words.size());
  size_t start = 0;
  for (size_t len : words) {
    const size_t begin = start, end = start + len;
    start = end;
    size_t prev_end = begin;
    auto emit = [&](size_t e) -> size_t {
      const size_t n = e - prev_end;
      if (n > 0) out.push_back(n);
      prev_end = e;
      return n;
    };
    split_word(begin, end, emit);
  }
  return out;
}

// The length of a contraction 's|'t|'re|'ve|'m|'ll|'d at `pos` (before `end`), or 0; letters in
// either case when `ignore_case` (Llama 3's (?i:...)), lower case only otherwise (GPT-2's).
template <typename Cpt>
size_t ContractionLength(const Cpt& cpt, size_t pos, size_t end, bool ignore_case) {
  if (cpt(pos) != '\'' || pos + 1 >= end) return 0;
  const auto letter = [&](size_t p) { return ignore_case ? AsciiLower(cpt(p)) : cpt(p); };
  const uint32_t n1 = letter(pos + 1);
  if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') return 2;
  if (pos + 2 >= end) return 0;
  const uint32_t n2 = letter(pos + 2);
  if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) return 3;
  return 0;
}

// Llama 3 (max_digits = 3) and Qwen2 (max_digits = 1) patterns.
std::vector<size_t> SplitLlama3Style(const Classified& t, const std::vector<size_t>& words,
                                     size_t max_digits) {
  return Refine(words, [&](size_t begin, size_t end, auto& emit) {
    const auto cpt = [&](size_t p) { return p >= begin && p < end ? t.cpts[p] : kOutOfRange; };
    const auto cls = [&](size_t p) {
      return p >= begin && p < end ? t.classes[p] : CodepointClass{};
    };
    const auto in_range = [&](size_t p) { return p >= begin && p < end; };
    for (size_t pos = begin; pos < end;) {
      const uint32_t c = cpt(pos);
      const CodepointClass f = cls(pos);
      // (?i:'s|'t|'re|'ve|'m|'ll|'d)
      if (const size_t n = ContractionLength(cpt, pos, end, /*ignore_case=*/true); n > 0) {
        pos += emit(pos + n);
        continue;
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if (!(c == '\r' || c == '\n' || f.number)) {
        if (f.letter || cls(pos + 1).letter) {
          ++pos;
          while (cls(pos).letter) ++pos;
          emit(pos);
          continue;
        }
      }
      // \p{N}{1,max_digits}
      if (f.number) {
        size_t run_start = pos;
        while (cls(pos).number) {
          if (++pos - run_start >= max_digits) {
            emit(pos);
            run_start = pos;
          }
        }
        emit(pos);
        continue;
      }
      // <space>?[^\s\p{L}\p{N}]+[\r\n]*
      CodepointClass f2 = c == ' ' ? cls(pos + 1) : f;
      const auto other = [&](const CodepointClass& k, size_t p) {
        return !(k.whitespace || k.letter || k.number) && in_range(p);
      };
      if (other(f2, c == ' ' ? pos + 1 : pos)) {
        pos += (c == ' ');
        while (other(cls(pos), pos)) ++pos;
        while (cpt(pos) == '\r' || cpt(pos) == '\n') ++pos;
        emit(pos);
        continue;
      }
      size_t num_ws = 0;
      size_t last_newline_end = 0;
      while (cls(pos + num_ws).whitespace) {
        const uint32_t w = cpt(pos + num_ws);
        if (w == '\r' || w == '\n') last_newline_end = pos + num_ws + 1;
        ++num_ws;
      }
      // \s*[\r\n]+
      if (last_newline_end > 0) {
        pos = last_newline_end;
        emit(pos);
        continue;
      }
      // \s+(?!\S): leave the last space to start the next word.
      if (num_ws > 1 && cpt(pos + num_ws) != kOutOfRange) {
        pos += num_ws - 1;
        emit(pos);
        continue;
      }
      // \s+
      if (num_ws > 0) {
        pos += num_ws;
        emit(pos);
        continue;
      }
      emit(++pos);
    }
  });
}

std::vector<size_t> SplitGpt2(const Classified& t, const std::vector<size_t>& words) {
  return Refine(words, [&](size_t begin, size_t end, auto& emit) {
    const auto cpt = [&](size_t p) { return p >= begin && p < end ? t.cpts[p] : kOutOfRange; };
    const auto cls = [&](size_t p) {
      return p >= begin && p < end ? t.classes[p] : CodepointClass{};
    };
    const auto in_range = [&](size_t p) { return p >= begin && p < end; };
    for (size_t pos = begin; pos < end;) {
      const uint32_t c = cpt(pos);
      // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
      if (const size_t n = ContractionLength(cpt, pos, end, /*ignore_case=*/false); n > 0) {
        pos += emit(pos + n);
        continue;
      }
      const size_t first = c == ' ' ? pos + 1 : pos;
      const CodepointClass f2 = cls(first);
      if (f2.letter) {  // <space>?\p{L}+
        pos = first;
        while (cls(pos).letter) ++pos;
        emit(pos);
        continue;
      }
      if (f2.number) {  // <space>?\p{N}+
        pos = first;
        while (cls(pos).number) ++pos;
        emit(pos);
        continue;
      }
      const auto other = [&](size_t p) {
        const CodepointClass k = cls(p);
        return !(k.whitespace || k.letter || k.number) && in_range(p);
      };
      if (other(first)) {  // <space>?[^\s\p{L}\p{N}]+
        pos = first;
        while (other(pos)) ++pos;
        emit(pos);
        continue;
      }
      size_t num_ws = 0;
      while (cls(pos + num_ws).whitespace) ++num_ws;
      if (num_ws > 1 && cpt(pos + num_ws) != kOutOfRange) {  // \s+(?!\S)
        pos += num_ws - 1;
        emit(pos);
        continue;
      }
      if (num_ws > 0) {  // \s+
        pos += num_ws;
        emit(pos);
        continue;
      }
      emit(++pos);
    }
  });
}

// Isolates matches of a one-code-point class: each matching code point alone (`runs` false) or
// maximal runs of them (`runs` true); text between matches stays one word.
template <typename Pred>
std::vector<size_t> SplitIsolated(const std::vector<size_t>& words, bool runs, Pred matches) {
  return Refine(words, [&](size_t begin, size_t end, auto& emit) {
    for (size_t pos = begin; pos < end;) {
      if (!matches(pos)) {
        ++pos;
        continue;
      }
      emit(pos);
      ++pos;
      if (runs) {
        while (pos < end && matches(pos)) ++pos;
      }
      emit(pos);
    }
    emit(end);
  });
}

}  // namespace

absl::StatusOr<BpePreTokenizer> BpePreTokenizerFromName(std::string_view name) {
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe" || name == "falcon3" ||
      name == "pixtral") {
    return BpePreTokenizer::kLlama3;
  }
  if (name == "qwen2" || name == "deepseek-r1-qwen" || name == "stablelm2") {
    return BpePreTokenizer::kQwen2;
  }
  if (name == "gpt-2" || name == "gpt2" || name == "phi-2" || name == "olmo" || name == "mpt") {
    return BpePreTokenizer::kGpt2;
  }
  if (name == "smollm" || name == "starcoder" || name == "refact" || name == "command-r") {
    return BpePreTokenizer::kSmolLm;
  }
  if (name.empty() || name == "default") return BpePreTokenizer::kDefault;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported BPE pre-tokenizer tokenizer.ggml.pre = '", std::string(name),
                   "' (kvserve knows llama-bpe, qwen2, gpt2, smollm, default)"));
}

std::vector<size_t> PreTokenize(BpePreTokenizer kind, const std::vector<uint32_t>& cpts) {
  if (cpts.empty()) return {};
  Classified t{cpts, {}};
  t.classes.reserve(cpts.size());
  for (uint32_t c : cpts) t.classes.push_back(ClassifyCodepoint(c));
  std::vector<size_t> words = {cpts.size()};
  const auto is_number = [&](size_t p) { return t.classes[p].number; };
  switch (kind) {
    case BpePreTokenizer::kLlama3:
      return SplitLlama3Style(t, words, 3);
    case BpePreTokenizer::kQwen2:
      return SplitLlama3Style(t, words, 1);
    case BpePreTokenizer::kGpt2:
      return SplitGpt2(t, words);
    case BpePreTokenizer::kSmolLm:
      return SplitGpt2(t, SplitIsolated(words, /*runs=*/false, is_number));
    case BpePreTokenizer::kDefault: {
      words = SplitIsolated(words, /*runs=*/true, [&](size_t p) {
        const uint32_t c = cpts[p];
        return t.classes[p].punctuation || c == '$' || c == '+' || c == '<' || c == '=' ||
               c == '>' || c == '^' || c == '~' || c == '|';
      });
      words = SplitGpt2(t, words);
      words = SplitIsolated(words, /*runs=*/true, is_number);
      // [0-9][0-9][0-9]: non-overlapping ASCII digit triples, left to right.
      return Refine(words, [&](size_t begin, size_t end, auto& emit) {
        const auto digit = [&](size_t p) { return cpts[p] >= '0' && cpts[p] <= '9'; };
        for (size_t pos = begin; pos + 3 <= end;) {
          if (digit(pos) && digit(pos + 1) && digit(pos + 2)) {
            emit(pos);
            emit(pos + 3);
            pos += 3;
          } else {
            ++pos;
          }
        }
        emit(end);
      });
    }
  }
  return words;
}

}  // namespace kvserve::engine
