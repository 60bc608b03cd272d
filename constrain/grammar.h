// A context-free grammar over bytes, compiled from llama.cpp's GBNF syntax, and the matcher
// that follows it one byte at a time. Structured output (JSON schemas, regular expressions,
// choices) is compiled to GBNF text first (json_schema.h, regex.h), so this is the one
// automaton every constraint runs on.
//
// GBNF as accepted here (llama.cpp's grammars/README.md, a superset in layout):
//   rule    ::= name "::=" alternatives      (names: [A-Za-z0-9_-]+; the start rule is `root`)
//   alternatives: sequences separated by "|"; a sequence may be empty
//   items:  "literal"   with escapes \n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH
//           [a-z0-9_]  [^"\\]   character classes of code points (escapes as above)
//           .          any code point
//           name       a rule;  ( ... )  a group
//           item* item+ item? item{m} item{m,} item{m,n}   (n <= 10000)
//   # comments run to the end of the line. Newlines are spaces: a rule ends where the next
//   `name ::=` begins.
// Literals and classes are Unicode code points, matched as their UTF-8 bytes (a class becomes
// alternatives of byte-range sequences; surrogates are never matched). Every rule referenced
// must be defined; left recursion (a rule that can reach itself without consuming a byte) and a
// `root` that derives no finite string are refused. Errors are InvalidArgument naming the
// line and column, or the rule.
//
// Ownership and threads: Grammar is immutable after Parse and may be shared by any number of
// matchers on any threads. A GrammarMatcher is a value owned by one request; not thread-safe.
#ifndef KVSERVE_CONSTRAIN_GRAMMAR_H_
#define KVSERVE_CONSTRAIN_GRAMMAR_H_

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::constrain {

// One element of a compiled alternative: a set of bytes, a reference to a rule, or the end of
// the alternative.
struct GrammarElement {
  enum class Kind : uint8_t { kBytes, kRule, kEnd };
  Kind kind = Kind::kEnd;
  int32_t rule = -1;      // kRule: the rule's index
  int32_t byte_set = -1;  // kBytes: index into Grammar::byte_sets()
};

class Grammar {
 public:
  // Parses and compiles GBNF text. At most kMaxRules rules after compilation (repetitions and
  // classes add helper rules) and kMaxElements elements.
  static absl::StatusOr<std::shared_ptr<const Grammar>> Parse(absl::string_view gbnf);

  static constexpr int kMaxRules = 1 << 16;
  static constexpr int kMaxElements = 1 << 21;

  // Compiled form: every alternative is a run of elements ending with kEnd; a rule is the list
  // of its alternatives' first positions. Positions index elements().
  const std::vector<GrammarElement>& elements() const { return elements_; }
  const std::vector<std::vector<int32_t>>& rules() const { return rules_; }
  const std::vector<std::bitset<256>>& byte_sets() const { return byte_sets_; }
  int32_t root() const { return root_; }
  const std::string& rule_name(int32_t rule) const { return rule_names_[rule]; }

 private:
  friend class GrammarCompiler;
  std::vector<GrammarElement> elements_;
  std::vector<std::vector<int32_t>> rules_;
  std::vector<std::bitset<256>> byte_sets_;
  std::vector<std::string> rule_names_;
  int32_t root_ = 0;
};

// Where a grammar is after the bytes it accepted: a set of stacks of positions (llama.cpp's
// representation). Each stack's top is a kBytes element (a byte may come next) or the stack is
// empty (the input so far is a complete sentence). No stacks: the input was refused.
class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  // Advances by one byte; false (and the matcher unchanged) if the byte cannot come next.
  bool AcceptByte(uint8_t byte);
  // Advances by every byte of `bytes`; false (and the matcher unchanged) if one is refused.
  bool AcceptBytes(absl::string_view bytes);
  // The input so far is a sentence of the grammar.
  bool IsAccepting() const;
  // Some byte may come next.
  bool CanContinue() const;
  // The bytes that may come next.
  std::bitset<256> NextBytes() const;
  // Too many ambiguous parses at once (kMaxStacks, kMaxExpandSteps): the matcher refuses
  // everything after. A grammar whose start already overflows is refused by GrammarConstraint.
  bool overflowed() const { return overflowed_; }

  // A canonical encoding of the state (equal states, equal keys), for caching masks.
  std::string StateKey() const;

  static constexpr size_t kMaxStacks = 4096;
  // Steps of the expansions of one byte (entering a rule, leaving one): past it the matcher
  // overflows.
  static constexpr size_t kMaxExpandSteps = 1 << 16;
  // Expansion steps this thread has taken, ever (wraps): a walk over many advances (the token
  // mask) bounds its own cost with it.
  static size_t& ThreadExpandSteps();

  // Internal, for the token mask: the stacks after `byte` from `stacks`.
  using Stack = std::vector<int32_t>;
  const std::vector<Stack>& stacks() const { return stacks_; }
  // `dedupe` false: duplicates are dropped only past kDedupeInWalkAbove stacks. False (and `to`
  // empty) when the parses overflow kMaxStacks or kMaxExpandSteps.
  bool Advance(const std::vector<Stack>& from, uint8_t byte, std::vector<Stack>* to,
               bool dedupe = true) const;
  static constexpr size_t kDedupeInWalkAbove = 32;
  const Grammar& grammar() const { return *grammar_; }

 private:
  bool Expand(const Stack& stack, std::vector<Stack>* out, size_t* n) const;

  std::shared_ptr<const Grammar> grammar_;
  std::vector<Stack> stacks_;
  bool overflowed_ = false;
};

}  // namespace kvserve::constrain

#endif  // KVSERVE_CONSTRAIN_GRAMMAR_H_
