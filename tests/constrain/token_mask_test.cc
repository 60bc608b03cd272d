// Token masks against a brute-force check over the vocabulary (every token's bytes fed to a copy
// of the matcher), and the end-token rule of a request's matcher.
#include <random>
#include <string>
#include <vector>

#include "constrain/grammar.h"
#include "constrain/token_constraint.h"
#include "constrain/token_vocabulary.h"
#include "gtest/gtest.h"

namespace kvserve::constrain {
namespace {

bool Bit(const std::vector<uint64_t>& bits, int32_t id) { return (bits[id >> 6] >> (id & 63)) & 1; }

// A vocabulary like a real one: every byte, common JSON pieces, random words with shared
// prefixes, multi-byte UTF-8, and empty (control) pieces.
std::vector<std::string> TestPieces() {
  std::vector<std::string> pieces{""};  // id 0: a control token
  for (int b = 0; b < 256; ++b) pieces.push_back(std::string(1, static_cast<char>(b)));
  for (const char* p :
       {"{\"",  "\":",   "\",",          "\"}",  "true", "false", "null", "12",  "123",  "0.",
        "e+",   " \"",   "\"\"",         "}}",   "]}",   "[{",    "ab",   "abc", "abcd", "\xc3\xa9",
        "\xc3", "\xa9t", "\xe2\x82\xac", "\n\n", "  ",   "\\n",   "\\\"", "name"}) {
    pieces.push_back(p);
  }
  std::mt19937 rng(7);
  const std::string alphabet = "abc{}[]\":,0123456789 \\\xc3\xa9";
  for (int i = 0; i < 3000; ++i) {
    std::string word;
    const int n = 1 + static_cast<int>(rng() % 7);
    for (int j = 0; j < n; ++j) word += alphabet[rng() % alphabet.size()];
    pieces.push_back(word);
  }
  pieces.push_back("");  // another control token
  return pieces;
}

std::vector<uint64_t> BruteForce(const GrammarMatcher& m, const TokenVocabulary& v) {
  std::vector<uint64_t> bits((v.size() + 63) / 64, 0);
  for (int32_t id = 0; id < v.size(); ++id) {
    if (v.piece(id).empty()) continue;
    GrammarMatcher copy = m;
    if (copy.AcceptBytes(v.piece(id))) bits[id >> 6] |= uint64_t{1} << (id & 63);
  }
  return bits;
}

TEST(TokenMaskTest, EqualsBruteForceAlongRandomWalks) {
  auto vocabulary = std::make_shared<const TokenVocabulary>(TestPieces());
  const std::vector<std::string> grammars = {
      R"(root ::= "{" ws "\"name\"" ws ":" ws str ws "}"
         str ::= "\"" ([^"\\] | "\\" ["\\n])* "\""
         ws ::= [ \n]*)",
      R"(root ::= [0-9]+ ("." [0-9]+)? ([eE] [-+]? [0-9]+)?)",
      R"(root ::= ("ab" | "abc" | [a-c]{2,4} | "\u00e9")+)",
      R"(root ::= "[" (v ("," v)*)? "]"
         v ::= "true" | "false" | "null" | root)",
  };
  std::mt19937 rng(11);
  for (const std::string& text : grammars) {
    absl::StatusOr<std::shared_ptr<const Grammar>> g = Grammar::Parse(text);
    ASSERT_TRUE(g.ok()) << g.status();
    for (int walk = 0; walk < 20; ++walk) {
      GrammarMatcher m(*g);
      for (int step = 0; step < 12; ++step) {
        std::vector<uint64_t> fast((vocabulary->size() + 63) / 64);
        const int64_t count = vocabulary->FillAllowed(m, absl::MakeSpan(fast));
        const std::vector<uint64_t> slow = BruteForce(m, *vocabulary);
        ASSERT_EQ(fast, slow) << text << " step " << step;
        std::vector<int32_t> allowed;
        for (int32_t id = 0; id < vocabulary->size(); ++id) {
          if (Bit(fast, id)) allowed.push_back(id);
        }
        ASSERT_EQ(count, static_cast<int64_t>(allowed.size()));
        if (allowed.empty()) break;
        ASSERT_TRUE(m.AcceptBytes(vocabulary->piece(allowed[rng() % allowed.size()])));
      }
    }
  }
}

TEST(TokenMaskTest, EndTokensOnlyWhereTheGrammarAccepts) {
  // ids: 0 "a", 1 "b", 2 "ab", 3 EOS (no bytes), 4 "c"
  auto vocabulary =
      std::make_shared<const TokenVocabulary>(std::vector<std::string>{"a", "b", "ab", "", "c"});
  absl::StatusOr<std::shared_ptr<const Grammar>> g = Grammar::Parse(R"(root ::= "a" "b"? )");
  ASSERT_TRUE(g.ok());
  absl::StatusOr<std::shared_ptr<const GrammarConstraint>> compiled =
      GrammarConstraint::Create(*g, vocabulary);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  RequestConstraint request(*compiled, {3});
  std::unique_ptr<engine::TokenMatcher> m = request.NewMatcher();
  std::vector<uint64_t> bits(1);
  EXPECT_EQ(m->FillAllowed(absl::MakeSpan(bits)), 2);  // "a", "ab"; not EOS yet
  EXPECT_EQ(bits[0], 0b00101u);
  m->Accept(0);
  EXPECT_EQ(m->FillAllowed(absl::MakeSpan(bits)), 2);  // "b", or EOS (complete)
  EXPECT_EQ(bits[0], 0b01010u);
  m->Accept(1);
  EXPECT_EQ(m->FillAllowed(absl::MakeSpan(bits)), 1);  // only EOS
  EXPECT_EQ(bits[0], 0b01000u);
  // Masks are cached by state: a second request walking the same states computes none.
  const int64_t misses = (*compiled)->cache_misses();
  std::unique_ptr<engine::TokenMatcher> m2 = request.NewMatcher();
  m2->FillAllowed(absl::MakeSpan(bits));
  m2->Accept(2);
  m2->FillAllowed(absl::MakeSpan(bits));
  EXPECT_EQ(bits[0], 0b01000u);
  EXPECT_EQ((*compiled)->cache_misses(), misses);
  // A token that was not allowed (a mask ignored): only end tokens from then on.
  std::unique_ptr<engine::TokenMatcher> m3 = request.NewMatcher();
  m3->Accept(4);
  EXPECT_EQ(m3->FillAllowed(absl::MakeSpan(bits)), 1);
  EXPECT_EQ(bits[0], 0b01000u);
}

TEST(TokenMaskTest, RefusesAGrammarNoTokenCanBegin) {
  auto vocabulary = std::make_shared<const TokenVocabulary>(std::vector<std::string>{"a", "b"});
  absl::StatusOr<std::shared_ptr<const Grammar>> g = Grammar::Parse(R"(root ::= "x")");
  ASSERT_TRUE(g.ok());
  absl::StatusOr<std::shared_ptr<const GrammarConstraint>> compiled =
      GrammarConstraint::Create(*g, vocabulary);
  ASSERT_FALSE(compiled.ok());
  EXPECT_NE(compiled.status().message().find("no token"), std::string::npos);
}

TEST(TokenMaskTest, RefusesAnExponentiallyAmbiguousGrammar) {
  // 40 nullable two-way choices in a row: 2^40 ways to expand the start.
  std::string gbnf = "root ::= ";
  for (int i = 0; i < 40; ++i) gbnf += "e ";
  gbnf += "\"x\"\ne ::= \"\" | \"\"";
  absl::StatusOr<std::shared_ptr<const Grammar>> g = Grammar::Parse(gbnf);
  ASSERT_TRUE(g.ok()) << g.status();
  GrammarMatcher m(*g);
  EXPECT_TRUE(m.overflowed());
  auto vocabulary = std::make_shared<const TokenVocabulary>(std::vector<std::string>{"x"});
  absl::StatusOr<std::shared_ptr<const GrammarConstraint>> compiled =
      GrammarConstraint::Create(*g, vocabulary);
  ASSERT_FALSE(compiled.ok());
  EXPECT_NE(compiled.status().message().find("too ambiguous"), std::string::npos);
}

TEST(TokenMaskTest, AnExpensiveWalkStopsWithValidTokensOnly) {
  // Every "a" enters a chain of 1000 rules: a 5000-byte token costs 5M expansion steps, past
  // the mask's budget, so it is left out; the short ones are found.
  std::string gbnf = "root ::= r0*\n";
  for (int i = 0; i < 1000; ++i)
    gbnf += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "\n";
  gbnf += "r1000 ::= \"a\"\n";
  absl::StatusOr<std::shared_ptr<const Grammar>> g = Grammar::Parse(gbnf);
  ASSERT_TRUE(g.ok()) << g.status();
  auto vocabulary = std::make_shared<const TokenVocabulary>(
      std::vector<std::string>{"a", "aa", std::string(5000, 'a'), "b"});
  GrammarMatcher m(*g);
  std::vector<uint64_t> bits(1);
  EXPECT_EQ(vocabulary->FillAllowed(m, absl::MakeSpan(bits)), 2);
  EXPECT_EQ(bits[0], 0b0011u);
  GrammarMatcher copy = m;
  EXPECT_TRUE(copy.AcceptBytes(std::string(5000, 'a')));  // valid, only too costly to find
}

}  // namespace
}  // namespace kvserve::constrain
