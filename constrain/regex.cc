#include "constrain/regex.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/stack_guard.h"
#include "base/status_macros.h"
#include "base/utf8.h"

namespace kvserve::constrain {
namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr uint32_t kSurrogateFirst = 0xD800;
constexpr uint32_t kSurrogateLast = 0xDFFF;
constexpr int kMaxRepeatCount = 1000;
constexpr int kMaxGroupDepth = 64;
constexpr int kUnbounded = -1;

// A set of code points: sorted, disjoint, non-adjacent closed ranges, never a surrogate.
struct CodeRange {
  uint32_t first;
  uint32_t last;
};
using CodeSet = std::vector<CodeRange>;

CodeSet Normalized(CodeSet set) {
  std::sort(set.begin(), set.end(),
            [](const CodeRange& a, const CodeRange& b) { return a.first < b.first; });
  CodeSet merged;
  for (const CodeRange& range : set) {
    if (!merged.empty() && range.first <= merged.back().last + 1) {
      merged.back().last = std::max(merged.back().last, range.last);
    } else {
      merged.push_back(range);
    }
  }
  CodeSet out;  // without surrogates
  for (const CodeRange& range : merged) {
    if (range.last < kSurrogateFirst || range.first > kSurrogateLast) {
      out.push_back(range);
      continue;
    }
    if (range.first < kSurrogateFirst) out.push_back({range.first, kSurrogateFirst - 1});
    if (range.last > kSurrogateLast) out.push_back({kSurrogateLast + 1, range.last});
  }
  return out;
}

// Every code point not in `set` (which is normalized).
CodeSet Complement(const CodeSet& set) {
  CodeSet out;
  uint32_t next = 0;
  for (const CodeRange& range : set) {
    if (range.first > next) out.push_back({next, range.first - 1});
    next = range.last + 1;
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return Normalized(std::move(out));
}

CodeSet Single(uint32_t cp) { return {{cp, cp}}; }
CodeSet Digits() { return {{'0', '9'}}; }
CodeSet WordChars() { return Normalized({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}); }
CodeSet SpaceChars() { return Normalized({{'\t', '\r'}, {' ', ' '}}); }  // \t \n \v \f \r

bool IsSingle(const CodeSet& set) { return set.size() == 1 && set[0].first == set[0].last; }
bool Contains(const CodeSet& set, uint32_t cp) {
  for (const CodeRange& range : set) {
    if (cp >= range.first && cp <= range.last) return true;
  }
  return false;
}

// Decodes the code point at `*pos` (advancing it); malformed UTF-8 is one U+FFFD per byte.
uint32_t DecodeUtf8(absl::string_view text, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  uint8_t lead = byte(*pos);
  int length = lead < 0x80         ? 1
               : (lead >> 5) == 6  ? 2
               : (lead >> 4) == 14 ? 3
               : (lead >> 3) == 30 ? 4
                                   : 0;
  if (length == 0 || *pos + length > text.size() ||
      base::FindInvalidUtf8(text.substr(*pos, length)) != absl::string_view::npos) {
    ++*pos;
    return base::kReplacementCharacter;
  }
  uint32_t cp = length == 1 ? lead : lead & (0x7F >> length);
  for (int i = 1; i < length; ++i) cp = (cp << 6) | (byte(*pos + i) & 0x3F);
  *pos += length;
  return cp;
}

// One code point in a GBNF literal or class; `specials` are backslash-escaped.
std::string GbnfCodePoint(uint32_t cp, absl::string_view specials) {
  if (cp == '\n') return "\\n";
  if (cp == '\r') return "\\r";
  if (cp == '\t') return "\\t";
  if (cp < 0x80 && specials.find(static_cast<char>(cp)) != absl::string_view::npos) {
    return absl::StrCat("\\", std::string(1, static_cast<char>(cp)));
  }
  if (cp >= 0x20 && cp < 0x7F && cp != '#') return std::string(1, static_cast<char>(cp));
  if (cp <= 0xFFFF) return absl::StrFormat("\\u%04X", cp);
  return absl::StrFormat("\\U%08X", cp);
}

std::string GbnfClassRanges(const CodeSet& set) {
  std::string out;
  for (const CodeRange& range : set) {
    absl::StrAppend(&out, GbnfCodePoint(range.first, "]\\-^[\""));
    if (range.last != range.first) {
      absl::StrAppend(&out, "-", GbnfCodePoint(range.last, "]\\-^[\""));
    }
  }
  return out;
}

// `set` (not empty) as one GBNF item matching its code points as UTF-8.
std::string GbnfRawSet(const CodeSet& set) {
  if (IsSingle(set)) return absl::StrCat("\"", GbnfCodePoint(set[0].first, "\"\\"), "\"");
  CodeSet complement = Complement(set);
  if (!complement.empty() && Contains(set, kMaxCodePoint) && complement.size() < set.size()) {
    return absl::StrCat("[^", GbnfClassRanges(complement), "]");
  }
  return absl::StrCat("[", GbnfClassRanges(set), "]");
}

// The hex digits (both cases) whose value is in `nibbles` (a bit per value).
std::string HexDigitClass(uint32_t nibbles) {
  std::string digits;
  for (int value = 0; value < 16; ++value) {
    if ((nibbles & (1u << value)) == 0) continue;
    digits += "0123456789abcdef"[value];
    if (value >= 10) digits += "0123456789ABCDEF"[value];
  }
  return absl::StrCat("[", digits, "]");
}

// `set` (not empty) as one GBNF item matching its code points written inside a JSON string.
std::string GbnfJsonSet(const CodeSet& set) {
  CodeSet plain = Normalized({{0x20, '"' - 1}, {'"' + 1, '\\' - 1}, {'\\' + 1, kMaxCodePoint}});
  CodeSet raw;  // set ∩ plain
  for (const CodeRange& a : set) {
    for (const CodeRange& b : plain) {
      uint32_t first = std::max(a.first, b.first), last = std::min(a.last, b.last);
      if (first <= last) raw.push_back({first, last});
    }
  }
  std::vector<std::string> alternatives;
  if (!raw.empty()) alternatives.push_back(GbnfRawSet(raw));
  if (Contains(set, '"')) alternatives.push_back("\"\\\\\\\"\"");  // "\\\""
  if (Contains(set, '\\')) alternatives.push_back("\"\\\\\\\\\"");
  if (Contains(set, '/')) alternatives.push_back("\"\\\\/\"");
  std::string short_escapes;
  uint32_t nibbles[2] = {0, 0};
  for (uint32_t cp = 0; cp < 0x20; ++cp) {
    if (!Contains(set, cp)) continue;
    nibbles[cp >> 4] |= 1u << (cp & 15);
    static constexpr absl::string_view kShortEscapeOf = "\b\t\n\f\r";
    size_t index = kShortEscapeOf.find(static_cast<char>(cp));
    if (index != absl::string_view::npos) short_escapes += "btnfr"[index];
  }
  if (!short_escapes.empty()) {
    alternatives.push_back(absl::StrCat("\"\\\\\" [", short_escapes, "]"));
  }
  for (int high = 0; high < 2; ++high) {
    if (nibbles[high] == 0) continue;
    alternatives.push_back(absl::StrCat("\"\\\\u00", high, "\" ", HexDigitClass(nibbles[high])));
  }
  if (alternatives.size() == 1) return alternatives[0];
  return absl::StrCat("(", absl::StrJoin(alternatives, " | "), ")");
}

struct Node {
  enum class Kind { kEmpty, kChars, kConcat, kAlternation, kRepeat };
  Kind kind = Kind::kEmpty;
  CodeSet chars;               // kChars
  std::vector<Node> children;  // kConcat, kAlternation; kRepeat: one
  int min = 0;                 // kRepeat
  int max = kUnbounded;        // kRepeat
};

Node CharsNode(CodeSet set) {
  Node node;
  node.kind = Node::Kind::kChars;
  node.chars = std::move(set);
  return node;
}

Node ListNode(Node::Kind kind, std::vector<Node> children) {
  if (children.empty()) return Node();
  if (children.size() == 1) return std::move(children[0]);
  Node node;
  node.kind = kind;
  node.children = std::move(children);
  return node;
}

Node RepeatNode(Node child, int min, int max) {
  Node node;
  node.kind = Node::Kind::kRepeat;
  node.children.push_back(std::move(child));
  node.min = min;
  node.max = max;
  return node;
}

// Recursive descent over the pattern, building a Node tree. Errors name the byte offset.
class RegexParser {
 public:
  explicit RegexParser(absl::string_view pattern) : pattern_(pattern) {}

  absl::StatusOr<Node> Parse() {
    size_t invalid = base::FindInvalidUtf8(pattern_);
    if (invalid != absl::string_view::npos) return Error(invalid, "not well-formed UTF-8");
    if (!pattern_.empty() && pattern_[0] == '^') pos_ = 1;
    KVSERVE_ASSIGN_OR_RETURN(node, ParseAlternation(0));
    if (pos_ < pattern_.size()) return Error(pos_, "unbalanced ')'");
    return node;
  }

 private:
  absl::Status Error(size_t offset, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("regex at offset ", offset, ": ", message));
  }
  bool AtEnd() const { return pos_ >= pattern_.size(); }
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < pattern_.size() ? pattern_[pos_ + ahead] : '\0';
  }

  absl::StatusOr<Node> ParseAlternation(int depth) {
    std::vector<Node> alternatives;
    while (true) {
      KVSERVE_ASSIGN_OR_RETURN(sequence, ParseSequence(depth));
      alternatives.push_back(std::move(sequence));
      if (Peek() != '|' || AtEnd()) break;
      ++pos_;
    }
    return ListNode(Node::Kind::kAlternation, std::move(alternatives));
  }

  absl::StatusOr<Node> ParseSequence(int depth) {
    std::vector<Node> items;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      size_t atom_offset = pos_;
      KVSERVE_ASSIGN_OR_RETURN(atom, ParseAtom(depth));
      KVSERVE_ASSIGN_OR_RETURN(item, ParseQuantifiers(std::move(atom), atom_offset));
      if (item.kind != Node::Kind::kEmpty) items.push_back(std::move(item));
    }
    return ListNode(Node::Kind::kConcat, std::move(items));
  }

  // A counted quantifier at pos_ ({m} {m,} {m,n} {,n}): true and its bounds, or false (then
  // `{` is a literal). Counts are validated by the caller.
  bool PeekCount(size_t* end, int64_t* min, int64_t* max) const {
    size_t i = pos_ + 1;
    auto number = [&](int64_t* value) {
      size_t start = i;
      *value = 0;
      while (i < pattern_.size() && pattern_[i] >= '0' && pattern_[i] <= '9') {
        *value = std::min<int64_t>(*value * 10 + (pattern_[i] - '0'), 1 << 30);
        ++i;
      }
      return i > start;
    };
    bool has_min = number(min);
    if (i < pattern_.size() && pattern_[i] == '}') {
      *max = *min;
    } else if (i < pattern_.size() && pattern_[i] == ',') {
      ++i;
      bool has_max = number(max);
      if (!has_min && !has_max) return false;
      if (!has_min) *min = 0;
      if (!has_max) *max = kUnbounded;
      if (i >= pattern_.size() || pattern_[i] != '}') return false;
    } else {
      return false;
    }
    if (!has_min && *max == *min) return false;
    *end = i + 1;
    return true;
  }

  bool AtQuantifier() const {
    size_t end;
    int64_t min, max;
    return Peek() == '*' || Peek() == '+' || Peek() == '?' ||
           (Peek() == '{' && PeekCount(&end, &min, &max));
  }

  absl::StatusOr<Node> ParseQuantifiers(Node atom, size_t atom_offset) {
    if (!AtQuantifier() || AtEnd()) return atom;
    size_t offset = pos_;
    int64_t min = 0, max = kUnbounded;
    size_t end = pos_ + 1;
    if (Peek() == '+') min = 1;
    if (Peek() == '?') max = 1;
    if (Peek() == '{') PeekCount(&end, &min, &max);
    if (min > kMaxRepeatCount || max > kMaxRepeatCount) {
      return Error(offset, absl::StrCat("repetition count over ", kMaxRepeatCount));
    }
    if (max != kUnbounded && min > max) return Error(offset, "repetition {m,n} with m > n");
    pos_ = end;
    if (Peek() == '?' && !AtEnd()) ++pos_;  // lazy: the same language
    if (Peek() == '+' && !AtEnd()) return Error(pos_, "possessive quantifiers are not supported");
    if (AtQuantifier() && !AtEnd()) return Error(pos_, "a quantifier cannot follow a quantifier");
    (void)atom_offset;
    return RepeatNode(std::move(atom), static_cast<int>(min), static_cast<int>(max));
  }

  absl::StatusOr<Node> ParseAtom(int depth) {
    size_t offset = pos_;
    char c = Peek();
    if (c == '(') return ParseGroup(depth);
    if (c == '[') {
      KVSERVE_ASSIGN_OR_RETURN(set, ParseClass());
      return CharsNode(std::move(set));
    }
    if (AtQuantifier()) return Error(offset, "quantifier with nothing to repeat");
    ++pos_;
    if (c == '.') return CharsNode(Complement(Single('\n')));
    if (c == '^') return Error(offset, "'^' is only supported at the start of the pattern");
    if (c == '$') {
      if (depth == 0 && AtEnd()) return Node();
      return Error(offset, "'$' is only supported at the end of the pattern");
    }
    if (c == '\\') {
      KVSERVE_ASSIGN_OR_RETURN(set, ParseEscape(offset, /*in_class=*/false));
      set = Normalized(std::move(set));
      if (set.empty()) return Error(offset, "a surrogate code point matches nothing");
      return CharsNode(std::move(set));
    }
    pos_ = offset;
    return CharsNode(Single(DecodeUtf8(pattern_, &pos_)));
  }

  absl::StatusOr<Node> ParseGroup(int depth) {
    size_t open = pos_++;
    if (depth >= kMaxGroupDepth) {
      return Error(open, absl::StrCat("groups nested more than ", kMaxGroupDepth, " deep"));
    }
    if (!base::StackHasRoom()) {
      return Error(open, "groups nested too deeply for this thread's stack");
    }
    if (Peek() == '?') KVSERVE_RETURN_IF_ERROR(ParseGroupPrefix());
    KVSERVE_ASSIGN_OR_RETURN(inner, ParseAlternation(depth + 1));
    if (Peek() != ')' || AtEnd()) {
      return Error(open, "unbalanced '(': no matching ')'");
    }
    ++pos_;
    return inner;
  }

  // After "(?": accepts ":" and "<name>" / "P<name>"; refuses everything else.
  absl::Status ParseGroupPrefix() {
    size_t offset = pos_ - 1;
    ++pos_;
    if (Peek() == ':') {
      ++pos_;
      return absl::OkStatus();
    }
    if (Peek() == '=' || Peek() == '!' || (Peek() == '<' && (Peek(1) == '=' || Peek(1) == '!'))) {
      return Error(offset, "lookaround is not supported");
    }
    if (Peek() == 'P' && (Peek(1) == '=' || Peek(1) == '>')) {
      return Error(offset, "backreferences are not supported");
    }
    if (Peek() == 'P') ++pos_;
    if (Peek() != '<') return Error(offset, "this group syntax (inline flags?) is not supported");
    ++pos_;
    size_t name_start = pos_;
    if (absl::ascii_isdigit(static_cast<unsigned char>(Peek()))) {
      return Error(offset, "malformed group name");
    }
    while (absl::ascii_isalnum(static_cast<unsigned char>(Peek())) || Peek() == '_') ++pos_;
    if (pos_ == name_start || Peek() != '>') return Error(offset, "malformed group name");
    ++pos_;
    return absl::OkStatus();
  }

  // `count` hex digits at pos_.
  absl::StatusOr<uint32_t> ParseHex(size_t escape_offset, int count) {
    uint32_t value = 0;
    for (int i = 0; i < count; ++i) {
      char c = Peek();
      if (AtEnd() || !absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
        return Error(escape_offset, absl::StrCat("escape needs ", count, " hex digits"));
      }
      value = value * 16 + (c <= '9' ? c - '0' : (absl::ascii_tolower(c) - 'a' + 10));
      ++pos_;
    }
    return value;
  }

  // The escape whose backslash is at `offset` (pos_ is after it).
  absl::StatusOr<CodeSet> ParseEscape(size_t offset, bool in_class) {
    if (AtEnd()) return Error(offset, "the pattern ends with '\\'");
    char c = pattern_[pos_++];
    switch (c) {
      case 'd':
        return Digits();
      case 'D':
        return Complement(Digits());
      case 'w':
        return WordChars();
      case 'W':
        return Complement(WordChars());
      case 's':
        return SpaceChars();
      case 'S':
        return Complement(SpaceChars());
      case 'n':
        return Single('\n');
      case 'r':
        return Single('\r');
      case 't':
        return Single('\t');
      case 'f':
        return Single('\f');
      case 'v':
        return Single('\v');
      case '0':
        if (absl::ascii_isdigit(static_cast<unsigned char>(Peek())) && !AtEnd()) {
          return Error(offset, "octal escapes are not supported");
        }
        return Single(0);
      case 'x': {
        KVSERVE_ASSIGN_OR_RETURN(cp, ParseHex(offset, 2));
        return Single(cp);
      }
      case 'u': {
        KVSERVE_ASSIGN_OR_RETURN(cp, ParseHex(offset, 4));
        return Single(cp);
      }
      case 'b':
        if (in_class) return Single('\b');
        return Error(offset, "word boundaries (\\b) are not supported");
      case 'B':
        return Error(offset, "word boundaries (\\B) are not supported");
      case 'A':
      case 'z':
      case 'Z':
      case 'G':
        return Error(offset, absl::StrCat("anchors (\\", std::string(1, c), ") are not supported"));
      case 'k':
        return Error(offset, "backreferences are not supported");
      default:
        break;
    }
    if (c >= '1' && c <= '9') return Error(offset, "backreferences are not supported");
    if ((c >= 0x20 && c < 0x7F) && !absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      return Single(static_cast<uint8_t>(c));
    }
    return Error(offset, "this escape is not supported");
  }

  // One member of a class at pos_: a code point (a single-element set) or an escape's set.
  absl::StatusOr<CodeSet> ParseClassMember() {
    size_t offset = pos_;
    if (Peek() == '\\') {
      ++pos_;
      return ParseEscape(offset, /*in_class=*/true);
    }
    return Single(DecodeUtf8(pattern_, &pos_));
  }

  absl::StatusOr<CodeSet> ParseClass() {
    size_t open = pos_++;
    bool negated = Peek() == '^' && !AtEnd();
    if (negated) ++pos_;
    CodeSet set;
    bool first = true;
    while (true) {
      if (AtEnd()) return Error(open, "unterminated character class");
      if (Peek() == ']' && !first) break;
      first = false;
      size_t left_offset = pos_;
      KVSERVE_ASSIGN_OR_RETURN(left, ParseClassMember());
      bool range = IsSingle(left) && Peek() == '-' && pos_ + 1 < pattern_.size() && Peek(1) != ']';
      if (!range) {
        set.insert(set.end(), left.begin(), left.end());
        continue;
      }
      ++pos_;  // '-'
      KVSERVE_ASSIGN_OR_RETURN(right, ParseClassMember());
      if (!IsSingle(right)) {  // [a-\d]: '-' is a literal
        set.insert(set.end(), left.begin(), left.end());
        set.push_back({'-', '-'});
        set.insert(set.end(), right.begin(), right.end());
        continue;
      }
      if (right[0].first < left[0].first) return Error(left_offset, "reversed range in a class");
      set.push_back({left[0].first, right[0].first});
    }
    ++pos_;  // ']'
    CodeSet result = negated ? Complement(Normalized(set)) : Normalized(set);
    if (result.empty()) return Error(open, "the character class matches nothing");
    return result;
  }

  absl::string_view pattern_;
  size_t pos_ = 0;
};

bool Nullable(const Node& node) {
  switch (node.kind) {
    case Node::Kind::kEmpty:
      return true;
    case Node::Kind::kChars:
      return false;
    case Node::Kind::kConcat:
      return std::all_of(node.children.begin(), node.children.end(), Nullable);
    case Node::Kind::kAlternation:
      return std::any_of(node.children.begin(), node.children.end(), Nullable);
    case Node::Kind::kRepeat:
      return node.min == 0 || Nullable(node.children[0]);
  }
  return false;
}

std::optional<Node> NonEmptyPart(const Node& node);

// The non-empty strings of children[first..] concatenated: NE(A)·rest | (A nullable: NE(rest)).
std::optional<Node> NonEmptyConcat(const std::vector<Node>& children, size_t first) {
  if (first == children.size()) return std::nullopt;
  const Node& head = children[first];
  std::vector<Node> rest(children.begin() + first + 1, children.end());
  std::vector<Node> alternatives;
  if (std::optional<Node> head_part = NonEmptyPart(head)) {
    std::vector<Node> sequence{std::move(*head_part)};
    sequence.insert(sequence.end(), rest.begin(), rest.end());
    alternatives.push_back(ListNode(Node::Kind::kConcat, std::move(sequence)));
  }
  if (Nullable(head)) {
    if (std::optional<Node> tail = NonEmptyConcat(children, first + 1)) {
      alternatives.push_back(std::move(*tail));
    }
  }
  if (alternatives.empty()) return std::nullopt;
  return ListNode(Node::Kind::kAlternation, std::move(alternatives));
}

// The same language without the empty string, or nullopt when that leaves nothing. Repeats in
// `node` are already simplified (their child is not nullable).
std::optional<Node> NonEmptyPart(const Node& node) {
  if (!Nullable(node)) return node;
  switch (node.kind) {
    case Node::Kind::kEmpty:
    case Node::Kind::kChars:
      return std::nullopt;
    case Node::Kind::kConcat:
      return NonEmptyConcat(node.children, 0);
    case Node::Kind::kAlternation: {
      std::vector<Node> alternatives;
      for (const Node& child : node.children) {
        if (std::optional<Node> part = NonEmptyPart(child)) alternatives.push_back(*part);
      }
      if (alternatives.empty()) return std::nullopt;
      return ListNode(Node::Kind::kAlternation, std::move(alternatives));
    }
    case Node::Kind::kRepeat: {  // min == 0 here: X X{0,max-1}
      if (node.max == 0) return std::nullopt;
      int rest_max = node.max == kUnbounded ? kUnbounded : node.max - 1;
      std::vector<Node> sequence{node.children[0]};
      if (rest_max != 0) sequence.push_back(RepeatNode(node.children[0], 0, rest_max));
      return ListNode(Node::Kind::kConcat, std::move(sequence));
    }
  }
  return std::nullopt;
}

// Rewrites every repeat of a nullable X as a repeat of X's non-empty part ((X){m,n} with X
// nullable = NE(X){0,n}), so no repetition can loop without consuming a byte (the grammar
// refuses left recursion) and no empty iterations multiply the parses.
Node Simplified(Node node) {
  for (Node& child : node.children) child = Simplified(std::move(child));
  if (node.kind != Node::Kind::kRepeat) return node;
  if (node.max == 0) return Node();
  if (Nullable(node.children[0])) {
    std::optional<Node> part = NonEmptyPart(node.children[0]);
    if (!part) return Node();
    node.children[0] = std::move(*part);
    node.min = 0;
  }
  if (node.min == 1 && node.max == 1) return std::move(node.children[0]);
  return node;
}

class GbnfWriter {
 public:
  explicit GbnfWriter(RegexCharEncoding encoding) : encoding_(encoding) {}

  // One GBNF item for `node`.
  std::string Item(const Node& node) const {
    switch (node.kind) {
      case Node::Kind::kEmpty:
        return "\"\"";
      case Node::Kind::kChars:
        return encoding_ == RegexCharEncoding::kRaw ? GbnfRawSet(node.chars)
                                                    : GbnfJsonSet(node.chars);
      case Node::Kind::kConcat:
        return absl::StrCat("(", Sequence(node.children), ")");
      case Node::Kind::kAlternation: {
        std::vector<std::string> alternatives;
        for (const Node& child : node.children) {
          alternatives.push_back(child.kind == Node::Kind::kConcat ? Sequence(child.children)
                                                                   : Item(child));
        }
        return absl::StrCat("(", absl::StrJoin(alternatives, " | "), ")");
      }
      case Node::Kind::kRepeat: {
        const Node& child = node.children[0];
        std::string item = Item(child);
        if (child.kind == Node::Kind::kRepeat) item = absl::StrCat("(", item, ")");
        return absl::StrCat("(", item, Quantifier(node.min, node.max), ")");
      }
    }
    return "\"\"";
  }

 private:
  static std::string Quantifier(int min, int max) {
    if (min == 0 && max == kUnbounded) return "*";
    if (min == 1 && max == kUnbounded) return "+";
    if (min == 0 && max == 1) return "?";
    if (max == kUnbounded) return absl::StrCat("{", min, ",}");
    if (min == max) return absl::StrCat("{", min, "}");
    return absl::StrCat("{", min, ",", max, "}");
  }

  // The code point of a single-character node that can join a literal run, or nullopt.
  std::optional<uint32_t> LiteralCodePoint(const Node& node) const {
    if (node.kind != Node::Kind::kChars || !IsSingle(node.chars)) return std::nullopt;
    uint32_t cp = node.chars[0].first;
    if (encoding_ == RegexCharEncoding::kJsonString && (cp < 0x20 || cp == '/')) {
      return std::nullopt;  // these have more than one spelling
    }
    return cp;
  }

  // Items separated by spaces; runs of single characters become one literal.
  std::string Sequence(const std::vector<Node>& children) const {
    std::vector<std::string> items;
    std::string run;
    for (const Node& child : children) {
      if (std::optional<uint32_t> cp = LiteralCodePoint(child)) {
        if (encoding_ == RegexCharEncoding::kJsonString && (*cp == '"' || *cp == '\\')) {
          run += "\\\\";
        }
        run += GbnfCodePoint(*cp, "\"\\");
        continue;
      }
      if (!run.empty()) items.push_back(absl::StrCat("\"", std::exchange(run, ""), "\""));
      items.push_back(Item(child));
    }
    if (!run.empty()) items.push_back(absl::StrCat("\"", run, "\""));
    return absl::StrJoin(items, " ");
  }

  RegexCharEncoding encoding_;
};

}  // namespace

absl::StatusOr<std::string> RegexToGbnfExpression(absl::string_view pattern,
                                                  RegexCharEncoding encoding) {
  KVSERVE_ASSIGN_OR_RETURN(node, RegexParser(pattern).Parse());
  return GbnfWriter(encoding).Item(Simplified(std::move(node)));
}

absl::StatusOr<std::string> RegexToGbnf(absl::string_view pattern) {
  KVSERVE_ASSIGN_OR_RETURN(expression, RegexToGbnfExpression(pattern, RegexCharEncoding::kRaw));
  return absl::StrCat("root ::= ", expression, "\n");
}

std::string GbnfLiteral(absl::string_view text) {
  std::string out = "\"";
  for (size_t pos = 0; pos < text.size();) {
    absl::StrAppend(&out, GbnfCodePoint(DecodeUtf8(text, &pos), "\"\\"));
  }
  out += "\"";
  return out;
}

}  // namespace kvserve::constrain
