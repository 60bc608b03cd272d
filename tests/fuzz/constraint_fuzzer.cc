// Fuzzes structured output's compilers and automaton: the first byte picks the kind (GBNF,
// regex, JSON schema, choices split at newlines), the rest is the client's text. Any input must
// compile or be refused with an error, never crash, overflow the stack or hang; and for every
// compiled constraint, along a walk chosen by the input, each token mask must equal a brute-force
// check of every token of a small vocabulary against a copy of the matcher (a walk stopped by
// its cost budget may only leave tokens out).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "constrain/constraint_compiler.h"
#include "constrain/grammar.h"
#include "constrain/token_constraint.h"
#include "constrain/token_vocabulary.h"
#include "tests/fuzz/fuzz_support.h"

namespace kvserve::fuzz {
namespace {

constexpr size_t kMaxText = 4096;
constexpr int kWalkSteps = 24;

std::shared_ptr<const constrain::TokenVocabulary> Vocabulary() {
  static const auto* vocabulary = [] {
    std::vector<std::string> pieces{""};  // a control token
    for (int b = 0; b < 256; ++b) pieces.push_back(std::string(1, static_cast<char>(b)));
    for (const char* p : {"{\"",   "\":",   "\",",      "\"}",          "true",
                          "false", "null",  "12",       "-0.",          "e+",
                          "ab",    "abc",   "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                          "\\n",   "\\u00", "[]",       "a|b",          "(",
                          "))",    "  ",    "\n"}) {
      pieces.push_back(p);
    }
    return new std::shared_ptr<const constrain::TokenVocabulary>(
        std::make_shared<const constrain::TokenVocabulary>(std::move(pieces)));
  }();
  return *vocabulary;
}

constrain::ConstraintSpec SpecOf(const uint8_t* data, size_t size) {
  constrain::ConstraintSpec spec;
  const std::string text(reinterpret_cast<const char*>(data + 1), std::min(size - 1, kMaxText));
  switch (data[0] % 4) {
    case 0:
      spec.kind = constrain::ConstraintSpec::Kind::kGrammar;
      break;
    case 1:
      spec.kind = constrain::ConstraintSpec::Kind::kRegex;
      break;
    case 2:
      spec.kind = constrain::ConstraintSpec::Kind::kJsonSchema;
      break;
    default:
      spec.kind = constrain::ConstraintSpec::Kind::kChoice;
      spec.choices = absl::StrSplit(text, '\n');
      return spec;
  }
  spec.text = text;
  return spec;
}

void CheckWalk(const constrain::GrammarConstraint& compiled, const uint8_t* data, size_t size) {
  const constrain::TokenVocabulary& v = compiled.vocabulary();
  constrain::GrammarMatcher matcher(compiled.grammar());
  std::vector<uint64_t> bits((v.size() + 63) / 64);
  for (int step = 0; step < kWalkSteps; ++step) {
    const size_t before = constrain::GrammarMatcher::ThreadExpandSteps();
    const int64_t count = v.FillAllowed(matcher, absl::MakeSpan(bits));
    // A walk past its budget returns only some of the allowed tokens (each still allowed).
    const bool truncated = constrain::GrammarMatcher::ThreadExpandSteps() - before >
                           constrain::TokenVocabulary::kMaxMaskSteps;
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < v.size(); ++id) {
      const bool fast = (bits[id >> 6] >> (id & 63)) & 1;
      bool slow = false;
      if (!v.piece(id).empty()) {
        constrain::GrammarMatcher copy = matcher;
        slow = copy.AcceptBytes(v.piece(id));
      }
      FuzzCheck(fast == slow || (truncated && !fast), "token mask differs from brute force");
      if (fast) allowed.push_back(id);
    }
    FuzzCheck(count == static_cast<int64_t>(allowed.size()), "mask count is wrong");
    if (allowed.empty()) return;
    const int32_t pick = allowed[data[step % size] % allowed.size()];
    FuzzCheck(matcher.AcceptBytes(v.piece(pick)), "an allowed token was refused");
  }
}

}  // namespace
}  // namespace kvserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  if (size < 1) return 0;
  const constrain::ConstraintSpec spec = fuzz::SpecOf(data, size);
  absl::StatusOr<std::string> gbnf = constrain::ConstraintToGbnf(spec);
  if (!gbnf.ok()) return 0;
  absl::StatusOr<std::shared_ptr<const constrain::Grammar>> grammar =
      constrain::Grammar::Parse(*gbnf);
  if (!grammar.ok()) {
    // Only user grammars may fail to parse: what the translators write must always parse.
    fuzz::FuzzCheck(spec.kind == constrain::ConstraintSpec::Kind::kGrammar ||
                        grammar.status().message().find("left recursion") != std::string::npos ||
                        grammar.status().message().find("no finite string") != std::string::npos ||
                        grammar.status().message().find("more than") != std::string::npos,
                    "a translated constraint does not parse");
    return 0;
  }
  absl::StatusOr<std::shared_ptr<const constrain::GrammarConstraint>> compiled =
      constrain::GrammarConstraint::Create(*grammar, fuzz::Vocabulary());
  if (compiled.ok()) fuzz::CheckWalk(**compiled, data, size);
  return 0;
}
