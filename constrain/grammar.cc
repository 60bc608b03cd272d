#include "constrain/grammar.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvserve::constrain {
namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr int kMaxRepeat = 10000;
constexpr int kMaxGroupDepth = 64;

using CodeRanges = std::vector<std::pair<uint32_t, uint32_t>>;  // inclusive, sorted, disjoint

// ---- The parsed form: rules of alternatives of sequences of items. ----

struct Item;
using Sequence = std::vector<Item>;
using Alternatives = std::vector<Sequence>;

struct Item {
  enum class Kind { kLiteral, kClass, kRef, kGroup };
  Kind kind = Kind::kLiteral;
  std::vector<uint32_t> literal;  // kLiteral: code points
  CodeRanges ranges;              // kClass: the code points matched (negation applied)
  std::string ref;                // kRef: the rule's name
  size_t offset = 0;              // where the item starts in the text, for errors
  Alternatives group;             // kGroup
  int min = 1;
  int max = 1;  // -1: unbounded
};

struct ParsedRule {
  std::string name;
  size_t offset = 0;
  Alternatives alternatives;
};

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

CodeRanges Normalize(CodeRanges ranges) {
  std::sort(ranges.begin(), ranges.end());
  CodeRanges out;
  for (const auto& r : ranges) {
    if (!out.empty() && r.first <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, r.second);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

CodeRanges Complement(const CodeRanges& ranges) {
  CodeRanges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : ranges) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.emplace_back(next, kMaxCodePoint);
  return out;
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<std::vector<ParsedRule>> ParseAll() {
    std::vector<ParsedRule> rules;
    SkipSpace();
    while (pos_ < text_.size()) {
      ParsedRule rule;
      rule.offset = pos_;
      rule.name = ParseName();
      if (rule.name.empty()) return Error(pos_, "expected a rule name");
      SkipSpace();
      if (text_.substr(pos_, 3) != "::=") {
        return Error(pos_, absl::StrCat("expected '::=' after rule name '", rule.name, "'"));
      }
      pos_ += 3;
      absl::StatusOr<Alternatives> alts = ParseAlternatives(/*depth=*/0);
      if (!alts.ok()) return alts.status();
      if (pos_ < text_.size() && text_[pos_] == ')') return Error(pos_, "unbalanced ')'");
      rule.alternatives = *std::move(alts);
      rules.push_back(std::move(rule));
      SkipSpace();
    }
    if (rules.empty()) return absl::InvalidArgumentError("grammar: no rules");
    return rules;
  }

  // "line L, column C" of a byte offset (columns count bytes, from 1).
  std::string Where(size_t offset) const {
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    return absl::StrCat("line ", line, ", column ", offset - line_start + 1);
  }

  absl::Status Error(size_t offset, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("grammar at ", Where(offset), ": ", message));
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string ParseName() {
    const size_t start = pos_;
    while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  // At `name ::=` (a new rule begins)?
  bool AtRuleStart() {
    const size_t saved = pos_;
    const bool named = !ParseName().empty();
    SkipSpace();
    const bool start = named && text_.substr(pos_, 3) == "::=";
    pos_ = saved;
    return start;
  }

  absl::StatusOr<Alternatives> ParseAlternatives(int depth) {
    Alternatives alts;
    while (true) {
      absl::StatusOr<Sequence> seq = ParseSequence(depth);
      if (!seq.ok()) return seq.status();
      alts.push_back(*std::move(seq));
      if (pos_ < text_.size() && text_[pos_] == '|') {
        ++pos_;
        continue;
      }
      return alts;
    }
  }

  absl::StatusOr<Sequence> ParseSequence(int depth) {
    Sequence seq;
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] == '|' || text_[pos_] == ')') return seq;
      if (depth == 0 && AtRuleStart()) return seq;
      absl::StatusOr<Item> item = ParseItem(depth);
      if (!item.ok()) return item.status();
      if (absl::Status st = ParseQuantifiers(&*item); !st.ok()) return st;
      seq.push_back(*std::move(item));
    }
  }

  absl::StatusOr<Item> ParseItem(int depth) {
    Item item;
    item.offset = pos_;
    const char c = text_[pos_];
    if (c == '"') {
      item.kind = Item::Kind::kLiteral;
      ++pos_;
      while (true) {
        if (pos_ >= text_.size()) return Error(item.offset, "unterminated string literal");
        if (text_[pos_] == '"') break;
        absl::StatusOr<uint32_t> cp = ParseChar();
        if (!cp.ok()) return cp.status();
        item.literal.push_back(*cp);
      }
      ++pos_;
    } else if (c == '[') {
      return ParseClass();
    } else if (c == '.') {
      ++pos_;
      item.kind = Item::Kind::kClass;
      item.ranges = {{0, kMaxCodePoint}};
    } else if (c == '(') {
      if (depth >= kMaxGroupDepth) {
        return Error(pos_, absl::StrCat("groups nested deeper than ", kMaxGroupDepth));
      }
      ++pos_;
      item.kind = Item::Kind::kGroup;
      absl::StatusOr<Alternatives> alts = ParseAlternatives(depth + 1);
      if (!alts.ok()) return alts.status();
      if (pos_ >= text_.size() || text_[pos_] != ')') return Error(item.offset, "unclosed '('");
      ++pos_;
      item.group = *std::move(alts);
    } else if (IsNameChar(c)) {
      item.kind = Item::Kind::kRef;
      item.ref = ParseName();
    } else {
      return Error(pos_, absl::StrFormat("unexpected character '%c'", c));
    }
    return item;
  }

  absl::StatusOr<Item> ParseClass() {
    Item item;
    item.kind = Item::Kind::kClass;
    item.offset = pos_;
    ++pos_;  // '['
    bool negated = false;
    if (pos_ < text_.size() && text_[pos_] == '^') {
      negated = true;
      ++pos_;
    }
    CodeRanges ranges;
    while (true) {
      if (pos_ >= text_.size()) return Error(item.offset, "unterminated character class");
      if (text_[pos_] == ']') break;
      const size_t at = pos_;
      absl::StatusOr<uint32_t> lo = ParseChar();
      if (!lo.ok()) return lo.status();
      uint32_t hi = *lo;
      if (pos_ + 1 < text_.size() && text_[pos_] == '-' && text_[pos_ + 1] != ']') {
        ++pos_;
        absl::StatusOr<uint32_t> end = ParseChar();
        if (!end.ok()) return end.status();
        hi = *end;
        if (hi < *lo) return Error(at, "character range out of order");
      }
      ranges.emplace_back(*lo, hi);
    }
    ++pos_;  // ']'
    item.ranges = Normalize(std::move(ranges));
    if (negated) item.ranges = Complement(item.ranges);
    return item;
  }

  absl::Status ParseQuantifiers(Item* item) {
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size()) return absl::OkStatus();
      const char c = text_[pos_];
      int min, max;
      if (c == '*' || c == '+' || c == '?') {
        ++pos_;
        min = c == '+' ? 1 : 0;
        max = c == '?' ? 1 : -1;
      } else if (c == '{') {
        if (absl::Status st = ParseBraces(&min, &max); !st.ok()) return st;
      } else {
        return absl::OkStatus();
      }
      if (item->min != 1 || item->max != 1) {
        // A quantified item quantified again: wrap it in a group.
        Item inner = std::move(*item);
        *item = Item();
        item->kind = Item::Kind::kGroup;
        item->offset = inner.offset;
        item->group = {Sequence{std::move(inner)}};
      }
      item->min = min;
      item->max = max;
    }
  }

  absl::Status ParseBraces(int* min, int* max) {
    const size_t start = pos_++;
    auto number = [&](int* out) {
      const size_t from = pos_;
      int64_t value = 0;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        value = std::min<int64_t>(value * 10 + (text_[pos_] - '0'), kMaxRepeat + 1);
        ++pos_;
      }
      *out = static_cast<int>(value);
      return pos_ > from;
    };
    SkipSpace();
    if (!number(min)) return Error(start, "expected a number after '{'");
    SkipSpace();
    *max = *min;
    if (pos_ < text_.size() && text_[pos_] == ',') {
      ++pos_;
      SkipSpace();
      if (!number(max)) *max = -1;
      SkipSpace();
    }
    if (pos_ >= text_.size() || text_[pos_] != '}') return Error(start, "expected '}'");
    ++pos_;
    if (*min > kMaxRepeat || *max > kMaxRepeat) {
      return Error(start, absl::StrCat("repetition counts above ", kMaxRepeat, " are refused"));
    }
    if (*max != -1 && *max < *min) return Error(start, "repetition {m,n} with n < m");
    return absl::OkStatus();
  }

  // One character of a literal or class: an escape or one UTF-8 encoded code point.
  absl::StatusOr<uint32_t> ParseChar() {
    const size_t at = pos_;
    const unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c == '\\') {
      if (pos_ + 1 >= text_.size()) return Error(at, "unterminated escape");
      const char e = text_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case 'n':
          return uint32_t{'\n'};
        case 'r':
          return uint32_t{'\r'};
        case 't':
          return uint32_t{'\t'};
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
        case '/':
        case '.':
        case '|':
        case '(':
        case ')':
        case '*':
        case '+':
        case '?':
        case '{':
        case '}':
          return static_cast<uint32_t>(e);
        case 'x':
          return ParseHex(at, 2);
        case 'u':
          return ParseHex(at, 4);
        case 'U':
          return ParseHex(at, 8);
        default:
          return Error(at, absl::StrFormat("unknown escape '\\%c'", e));
      }
    }
    // UTF-8: the grammar text is UTF-8; a malformed byte is an error.
    int length = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (length == 0 || pos_ + length > text_.size()) return Error(at, "invalid UTF-8");
    uint32_t cp = length == 1 ? c : c & (0xFF >> (length + 1));
    for (int i = 1; i < length; ++i) {
      const unsigned char b = static_cast<unsigned char>(text_[pos_ + i]);
      if ((b & 0xC0) != 0x80) return Error(at, "invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    pos_ += length;
    return CheckCodePoint(at, cp);
  }

  absl::StatusOr<uint32_t> ParseHex(size_t at, int digits) {
    uint32_t value = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      if (pos_ >= text_.size()) return Error(at, "truncated hexadecimal escape");
      const char h = text_[pos_];
      const int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
      if (d < 0) return Error(at, "bad hexadecimal escape");
      value = value * 16 + static_cast<uint32_t>(d);
    }
    return CheckCodePoint(at, value);
  }

  absl::StatusOr<uint32_t> CheckCodePoint(size_t at, uint32_t cp) {
    if (cp > kMaxCodePoint) return Error(at, "code point above U+10FFFF");
    if (cp >= 0xD800 && cp <= 0xDFFF) return Error(at, "surrogate code points cannot be matched");
    return cp;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

// ---- UTF-8: code-point ranges as sequences of byte ranges. ----

using ByteRanges = std::vector<std::pair<uint8_t, uint8_t>>;

int Utf8Length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void EncodeUtf8(uint32_t cp, uint8_t* out) {
  switch (Utf8Length(cp)) {
    case 1:
      out[0] = static_cast<uint8_t>(cp);
      break;
    case 2:
      out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
      out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    case 3:
      out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
      out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    default:
      out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
      out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
      out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  }
}

// Splits [lo, hi] until each piece's UTF-8 encodings form a product of byte ranges (the
// construction of Russ Cox's RE2 / Rust's regex-syntax Utf8Sequences, written here anew).
void AppendUtf8Sequences(uint32_t lo, uint32_t hi, std::vector<ByteRanges>* out) {
  if (lo > hi) return;
  if (lo <= 0xDFFF && hi >= 0xD800) {  // never the surrogates
    if (lo < 0xD800) AppendUtf8Sequences(lo, 0xD7FF, out);
    if (hi > 0xDFFF) AppendUtf8Sequences(0xE000, hi, out);
    return;
  }
  for (uint32_t boundary : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= boundary && hi > boundary) {
      AppendUtf8Sequences(lo, boundary, out);
      AppendUtf8Sequences(boundary + 1, hi, out);
      return;
    }
  }
  const int n = Utf8Length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        AppendUtf8Sequences(lo, lo | m, out);
        AppendUtf8Sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        AppendUtf8Sequences(lo, (hi & ~m) - 1, out);
        AppendUtf8Sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  EncodeUtf8(lo, a);
  EncodeUtf8(hi, b);
  ByteRanges seq;
  for (int i = 0; i < n; ++i) seq.emplace_back(a[i], b[i]);
  out->push_back(std::move(seq));
}

}  // namespace

// ---- Compilation: items to byte-level elements, helper rules for groups and repeats. ----

class GrammarCompiler {
 public:
  explicit GrammarCompiler(const Parser& parser) : parser_(parser) {}

  absl::StatusOr<std::shared_ptr<const Grammar>> Compile(std::vector<ParsedRule> parsed) {
    for (const ParsedRule& rule : parsed) {
      if (index_.contains(rule.name)) {
        return parser_.Error(rule.offset, absl::StrCat("rule '", rule.name, "' is defined twice"));
      }
      index_[rule.name] = static_cast<int32_t>(names_.size());
      names_.push_back(rule.name);
      alts_.emplace_back();
    }
    auto root = index_.find("root");
    if (root == index_.end()) return absl::InvalidArgumentError("grammar: no rule 'root'");
    for (const ParsedRule& rule : parsed) {
      absl::StatusOr<std::vector<Elements>> alts =
          CompileAlternatives(rule.alternatives, rule.name);
      if (!alts.ok()) return alts.status();
      alts_[index_[rule.name]] = *std::move(alts);
    }
    auto grammar = std::shared_ptr<Grammar>(new Grammar);
    grammar->root_ = root->second;
    grammar->rule_names_ = names_;
    grammar->byte_sets_ = byte_sets_;
    for (const std::vector<Elements>& rule : alts_) {
      std::vector<int32_t> starts;
      for (const Elements& alt : rule) {
        starts.push_back(static_cast<int32_t>(grammar->elements_.size()));
        grammar->elements_.insert(grammar->elements_.end(), alt.begin(), alt.end());
        grammar->elements_.push_back(GrammarElement{});
      }
      grammar->rules_.push_back(std::move(starts));
      if (grammar->elements_.size() > static_cast<size_t>(Grammar::kMaxElements)) {
        return absl::InvalidArgumentError(
            absl::StrCat("grammar: more than ", Grammar::kMaxElements, " elements"));
      }
    }
    if (absl::Status st = Check(*grammar); !st.ok()) return st;
    return std::shared_ptr<const Grammar>(std::move(grammar));
  }

 private:
  using Elements = std::vector<GrammarElement>;

  absl::StatusOr<std::vector<Elements>> CompileAlternatives(const Alternatives& alternatives,
                                                            const std::string& owner) {
    std::vector<Elements> out;
    for (const Sequence& seq : alternatives) {
      Elements elements;
      for (const Item& item : seq) {
        if (absl::Status st = CompileItem(item, owner, &elements); !st.ok()) return st;
      }
      out.push_back(std::move(elements));
    }
    return out;
  }

  absl::Status CompileItem(const Item& item, const std::string& owner, Elements* out) {
    absl::StatusOr<Elements> unit = CompileUnit(item, owner);
    if (!unit.ok()) return unit.status();
    for (int i = 0; i < item.min; ++i) out->insert(out->end(), unit->begin(), unit->end());
    if (item.max == item.min) return absl::OkStatus();
    if (item.max == -1) {  // star ::= unit star |
      absl::StatusOr<int32_t> star = NewRule(owner);
      if (!star.ok()) return star.status();
      Elements loop = *unit;
      loop.push_back(RefTo(*star));
      alts_[*star] = {loop, {}};
      out->push_back(RefTo(*star));
      return absl::OkStatus();
    }
    // opt_1 ::= unit |   opt_k ::= unit opt_{k-1} |
    int32_t previous = -1;
    for (int k = 0; k < item.max - item.min; ++k) {
      absl::StatusOr<int32_t> opt = NewRule(owner);
      if (!opt.ok()) return opt.status();
      Elements more = *unit;
      if (previous >= 0) more.push_back(RefTo(previous));
      alts_[*opt] = {more, {}};
      previous = *opt;
    }
    out->push_back(RefTo(previous));
    return absl::OkStatus();
  }

  // The elements of one occurrence of `item`, ignoring its quantifier.
  absl::StatusOr<Elements> CompileUnit(const Item& item, const std::string& owner) {
    Elements out;
    switch (item.kind) {
      case Item::Kind::kLiteral:
        for (uint32_t cp : item.literal) {
          uint8_t bytes[4];
          EncodeUtf8(cp, bytes);
          for (int i = 0; i < Utf8Length(cp); ++i) {
            std::bitset<256> set;
            set.set(bytes[i]);
            out.push_back(BytesOf(set));
          }
        }
        return out;
      case Item::Kind::kClass:
        return CompileClass(item.ranges, owner);
      case Item::Kind::kRef: {
        auto it = index_.find(item.ref);
        if (it == index_.end()) {
          return parser_.Error(item.offset, absl::StrCat("undefined rule '", item.ref, "'"));
        }
        out.push_back(RefTo(it->second));
        return out;
      }
      case Item::Kind::kGroup: {
        absl::StatusOr<int32_t> rule = NewRule(owner);
        if (!rule.ok()) return rule.status();
        absl::StatusOr<std::vector<Elements>> alts = CompileAlternatives(item.group, owner);
        if (!alts.ok()) return alts.status();
        alts_[*rule] = *std::move(alts);
        out.push_back(RefTo(*rule));
        return out;
      }
    }
    return out;
  }

  absl::StatusOr<Elements> CompileClass(const CodeRanges& ranges, const std::string& owner) {
    std::vector<ByteRanges> sequences;
    for (const auto& [lo, hi] : ranges) AppendUtf8Sequences(lo, hi, &sequences);
    std::bitset<256> single;  // the one-byte sequences, merged
    // Multi-byte sequences with equal tails merge their first bytes (a product of ranges
    // distributes over the union), so [^"] has 7 alternatives instead of 9.
    std::vector<std::pair<std::bitset<256>, ByteRanges>> merged;  // (first bytes, tail)
    for (const ByteRanges& seq : sequences) {
      std::bitset<256> first;
      for (int b = seq[0].first; b <= seq[0].second; ++b) first.set(b);
      if (seq.size() == 1) {
        single |= first;
        continue;
      }
      const ByteRanges tail(seq.begin() + 1, seq.end());
      auto same = std::find_if(merged.begin(), merged.end(),
                               [&](const auto& m) { return m.second == tail; });
      if (same != merged.end()) {
        same->first |= first;
      } else {
        merged.emplace_back(first, tail);
      }
    }
    std::vector<Elements> multi;
    for (const auto& [first, tail] : merged) {
      Elements elements{BytesOf(first)};
      for (const auto& [lo, hi] : tail) {
        std::bitset<256> set;
        for (int b = lo; b <= hi; ++b) set.set(b);
        elements.push_back(BytesOf(set));
      }
      multi.push_back(std::move(elements));
    }
    if (multi.empty()) return Elements{BytesOf(single)};
    if (single.any()) multi.insert(multi.begin(), Elements{BytesOf(single)});
    absl::StatusOr<int32_t> rule = NewRule(owner);
    if (!rule.ok()) return rule.status();
    alts_[*rule] = std::move(multi);
    return Elements{RefTo(*rule)};
  }

  absl::StatusOr<int32_t> NewRule(const std::string& owner) {
    if (names_.size() >= static_cast<size_t>(Grammar::kMaxRules)) {
      return absl::InvalidArgumentError(absl::StrCat("grammar: more than ", Grammar::kMaxRules,
                                                     " rules once repetitions are expanded"));
    }
    names_.push_back(absl::StrCat(owner, "-", ++helpers_[owner]));
    alts_.emplace_back();
    return static_cast<int32_t>(names_.size() - 1);
  }

  GrammarElement RefTo(int32_t rule) {
    GrammarElement e;
    e.kind = GrammarElement::Kind::kRule;
    e.rule = rule;
    return e;
  }

  GrammarElement BytesOf(const std::bitset<256>& set) {
    const std::string key = set.to_string();
    auto [it, inserted] = byte_set_index_.try_emplace(key, static_cast<int32_t>(byte_sets_.size()));
    if (inserted) byte_sets_.push_back(set);
    GrammarElement e;
    e.kind = GrammarElement::Kind::kBytes;
    e.byte_set = it->second;
    return e;
  }

  // Nullable and productive rules by fixpoint; then left recursion by depth-first search.
  absl::Status Check(const Grammar& g) {
    const size_t n = g.rules().size();
    std::vector<char> nullable(n, 0), productive(n, 0);
    auto alt_has = [&](int32_t start, const std::vector<char>& property, bool bytes_have) {
      for (int32_t p = start; g.elements()[p].kind != GrammarElement::Kind::kEnd; ++p) {
        const GrammarElement& e = g.elements()[p];
        const bool has = e.kind == GrammarElement::Kind::kBytes
                             ? (bytes_have && g.byte_sets()[e.byte_set].any())
                             : property[e.rule] != 0;
        if (!has) return false;
      }
      return true;
    };
    for (auto* property : {&nullable, &productive}) {
      const bool bytes_have = property == &productive;
      for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r) {
          if ((*property)[r]) continue;
          for (int32_t start : g.rules()[r]) {
            if (alt_has(start, *property, bytes_have)) {
              (*property)[r] = 1;
              changed = true;
              break;
            }
          }
        }
      }
    }
    if (!productive[g.root()]) {
      return absl::InvalidArgumentError("grammar: rule 'root' matches no finite string");
    }
    return CheckLeftRecursion(g, nullable);
  }

  absl::Status CheckLeftRecursion(const Grammar& g, const std::vector<char>& nullable) {
    const size_t n = g.rules().size();
    std::vector<std::vector<int32_t>> starts_with(n);  // r -> rules r can begin with
    for (size_t r = 0; r < n; ++r) {
      for (int32_t start : g.rules()[r]) {
        for (int32_t p = start; g.elements()[p].kind == GrammarElement::Kind::kRule; ++p) {
          const int32_t s = g.elements()[p].rule;
          starts_with[r].push_back(s);
          if (!nullable[s]) break;
        }
      }
    }
    std::vector<char> color(n, 0);  // 0 new, 1 on the path, 2 done
    for (size_t first = 0; first < n; ++first) {
      if (color[first]) continue;
      std::vector<std::pair<int32_t, size_t>> path{{static_cast<int32_t>(first), 0}};
      color[first] = 1;
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next == starts_with[r].size()) {
          color[r] = 2;
          path.pop_back();
          continue;
        }
        const int32_t s = starts_with[r][next++];
        if (color[s] == 1) {
          return absl::InvalidArgumentError(absl::StrCat(
              "grammar: left recursion: rule '", names_[s],
              "' can reach itself without matching a byte (a repeated item that can be empty "
              "does this too)"));
        }
        if (color[s] == 0) {
          color[s] = 1;
          path.emplace_back(s, 0);
        }
      }
    }
    return absl::OkStatus();
  }

  const Parser& parser_;
  absl::flat_hash_map<std::string, int32_t> index_;
  absl::flat_hash_map<std::string, int> helpers_;
  std::vector<std::string> names_;
  std::vector<std::vector<Elements>> alts_;
  std::vector<std::bitset<256>> byte_sets_;
  absl::flat_hash_map<std::string, int32_t> byte_set_index_;
};

absl::StatusOr<std::shared_ptr<const Grammar>> Grammar::Parse(absl::string_view gbnf) {
  Parser parser(gbnf);
  absl::StatusOr<std::vector<ParsedRule>> rules = parser.ParseAll();
  if (!rules.ok()) return rules.status();
  return GrammarCompiler(parser).Compile(*std::move(rules));
}

// ---- Matching. ----

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar)
    : grammar_(std::move(grammar)) {
  size_t n = 0;
  for (int32_t start : grammar_->rules()[grammar_->root()]) {
    if (!Expand(Stack{start}, &stacks_, &n) || n > kMaxStacks) {
      overflowed_ = true;
      stacks_.clear();
      return;
    }
  }
  stacks_.resize(n);
  std::sort(stacks_.begin(), stacks_.end());
  stacks_.erase(std::unique(stacks_.begin(), stacks_.end()), stacks_.end());
}

namespace {

// Reusable stacks: assign() into a slot keeps its memory, so the mask's walk, which advances the
// grammar once per trie edge, allocates almost nothing once warm.
void CopyInto(std::vector<GrammarMatcher::Stack>* slots, size_t* n,
              const GrammarMatcher::Stack& stack) {
  if (*n == slots->size()) slots->emplace_back();
  (*slots)[*n].assign(stack.begin(), stack.end());
  ++*n;
}

}  // namespace

// Writes, from (*out)[*n] on, every stack `stack` can become without consuming a byte whose top
// is a byte set (or that is empty). Iterative: the chain of rules entered can be as long as the
// grammar.
bool GrammarMatcher::Expand(const Stack& stack, std::vector<Stack>* out, size_t* n) const {
  const std::vector<GrammarElement>& elements = grammar_->elements();
  thread_local std::vector<Stack> work;
  size_t depth = 0;
  CopyInto(&work, &depth, stack);
  // Expansion ends (no left recursion) but may branch exponentially (a sequence of nullable
  // ambiguous rules): bounded, so a hostile grammar costs a named error, not the CPU.
  size_t& steps = ThreadExpandSteps();
  const size_t first = steps;
  while (depth > 0) {
    if (++steps - first > kMaxExpandSteps) return false;
    Stack& s = work[depth - 1];
    while (!s.empty() && elements[s.back()].kind == GrammarElement::Kind::kEnd) s.pop_back();
    if (s.empty() || elements[s.back()].kind == GrammarElement::Kind::kBytes) {
      CopyInto(out, n, s);
      --depth;
      continue;
    }
    const int32_t p = s.back();
    s.pop_back();
    // Tail call: nothing follows the rule in this alternative, so do not keep a position.
    if (elements[p + 1].kind != GrammarElement::Kind::kEnd) s.push_back(p + 1);
    const std::vector<int32_t>& alts = grammar_->rules()[elements[p].rule];
    const size_t base = depth - 1;
    // Room first: CopyInto below must not reallocate `work` while copying from it.
    if (work.size() < depth + alts.size()) work.resize(depth + alts.size());
    for (size_t a = 1; a < alts.size(); ++a) {
      CopyInto(&work, &depth, work[base]);
      work[depth - 1].push_back(alts[a]);
    }
    work[base].push_back(alts[0]);
    // Process the copies first, the original (now alts[0]) last: order does not matter, the set
    // does.
    if (depth - 1 != base) std::swap(work[base], work[depth - 1]);
  }
  return true;
}

// The hot loop of the token mask (one call per trie edge). `dedupe`: sort and drop duplicate
// stacks (the state's canonical form; the mask's walk skips it for small sets, where duplicates
// only repeat work).
bool GrammarMatcher::Advance(const std::vector<Stack>& from, uint8_t byte, std::vector<Stack>* to,
                             bool dedupe) const {
  const std::vector<GrammarElement>& elements = grammar_->elements();
  size_t n = 0;
  thread_local Stack moved;
  const size_t first = ThreadExpandSteps();
  for (const Stack& s : from) {
    if (s.empty()) continue;
    const GrammarElement& e = elements[s.back()];
    if (!grammar_->byte_sets()[e.byte_set].test(byte)) continue;
    if (elements[s.back() + 1].kind == GrammarElement::Kind::kBytes) {
      CopyInto(to, &n, s);
      (*to)[n - 1].back() += 1;
      continue;
    }
    moved.assign(s.begin(), s.end());
    moved.back() += 1;
    // One advance's expansions together are bounded too, not only each one.
    if (!Expand(moved, to, &n) || n > kMaxStacks || ThreadExpandSteps() - first > kMaxExpandSteps) {
      to->clear();
      return false;
    }
  }
  to->resize(n);
  if (n > 1 && (dedupe || n > kDedupeInWalkAbove)) {
    std::sort(to->begin(), to->end());
    to->erase(std::unique(to->begin(), to->end()), to->end());
  }
  return to->size() <= kMaxStacks;
}

size_t& GrammarMatcher::ThreadExpandSteps() {
  thread_local size_t steps = 0;
  return steps;
}

bool GrammarMatcher::AcceptByte(uint8_t byte) {
  if (overflowed_) return false;
  std::vector<Stack> next;
  if (!Advance(stacks_, byte, &next)) {
    overflowed_ = true;
    stacks_.clear();
    return false;
  }
  if (next.empty()) return false;
  stacks_ = std::move(next);
  return true;
}

bool GrammarMatcher::AcceptBytes(absl::string_view bytes) {
  if (overflowed_) return false;
  std::vector<Stack> current = stacks_, next;
  for (char c : bytes) {
    if (!Advance(current, static_cast<uint8_t>(c), &next)) {
      overflowed_ = true;
      stacks_.clear();
      return false;
    }
    if (next.empty()) return false;
    current.swap(next);
  }
  stacks_ = std::move(current);
  return true;
}

bool GrammarMatcher::IsAccepting() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool GrammarMatcher::CanContinue() const { return NextBytes().any(); }

std::bitset<256> GrammarMatcher::NextBytes() const {
  std::bitset<256> bytes;
  for (const Stack& s : stacks_) {
    if (!s.empty()) bytes |= grammar_->byte_sets()[grammar_->elements()[s.back()].byte_set];
  }
  return bytes;
}

std::string GrammarMatcher::StateKey() const {
  std::string key;
  for (const Stack& s : stacks_) {
    key.append(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(int32_t));
    const int32_t separator = -1;
    key.append(reinterpret_cast<const char*>(&separator), sizeof(separator));
  }
  return key;
}

}  // namespace kvserve::constrain
