// The GBNF parser and the byte-level matcher: each construct against strings it must accept
// and refuse (expected by hand, from the grammar's meaning), and every error named.
#include "constrain/grammar.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kvserve::constrain {
namespace {

std::shared_ptr<const Grammar> MustParse(const std::string& gbnf) {
  absl::StatusOr<std::shared_ptr<const Grammar>> g = Grammar::Parse(gbnf);
  EXPECT_TRUE(g.ok()) << g.status() << "\n" << gbnf;
  return g.ok() ? *g : nullptr;
}

bool Matches(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  return m.AcceptBytes(text) && m.IsAccepting();
}

struct Case {
  std::string gbnf;
  std::vector<std::string> accept;
  std::vector<std::string> refuse;
};

TEST(GrammarTest, ConstructsAcceptAndRefuse) {
  const std::vector<Case> cases = {
      {R"(root ::= "abc")", {"abc"}, {"", "ab", "abcd", "abd"}},
      {R"(root ::= "a" | "bc" | "")", {"a", "bc", ""}, {"b", "abc", "c"}},
      {R"(root ::= [a-c]+)", {"a", "abc", "cccb"}, {"", "d", "abd"}},
      {R"(root ::= [^a-c]*)", {"", "xyz", "é", "\n"}, {"a", "xa"}},
      {R"(root ::= "x"?  "y")", {"y", "xy"}, {"xxy", "x"}},
      {R"(root ::= "a"{3})", {"aaa"}, {"aa", "aaaa"}},
      {R"(root ::= "a"{2,})", {"aa", "aaaaaa"}, {"a", ""}},
      {R"(root ::= "a"{1,3})", {"a", "aa", "aaa"}, {"", "aaaa"}},
      {R"(root ::= "a"{0,2} "b")", {"b", "ab", "aab"}, {"aaab"}},
      {R"(root ::= ("ab" | "c")* "d")", {"d", "abd", "cabcd"}, {"ad", "abc"}},
      {"root ::= item (\",\" item)*\nitem ::= [0-9]+", {"1", "12,3,456"}, {"", "1,", ",1"}},
      {R"g(root ::= "(" root ")" | "")g", {"", "()", "((()))"}, {"(", "())", ")("}},
      {R"(root ::= .)",
       {"a", "é", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\n"},
       {"", "ab", "\xc3", "\xed\xa0\x80" /* a surrogate */, "\xff"}},
      {R"(root ::= "\x41\u00e9\U0001F600\n\t\\\"")", {"A\xc3\xa9\xf0\x9f\x98\x80\n\t\\\""}, {"A"}},
      {R"(root ::= [\u0400-\u04FF]+)", {"\xd0\x96", "\xd0\x96\xd1\x8f"}, {"a", "\xc3\xa9"}},
      {R"(root ::= [\u0080-\U0010FFFF])",
       {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"},
       {"a", "\xed\xa0\x80", "\xf4\x90\x80\x80"}},
      {"# a comment\nroot ::= a b # trailing\na ::= \"a\"\n\nb ::=\n  \"b\"\n  | \"c\"",
       {"ab", "ac"},
       {"a", "abc"}},
      {R"(root ::= [-a] [a\-z] [\]])", {"-a]", "aa]", "a-]", "az]"}, {"ab]", "b-]"}},
      {R"(root ::= "a"+ "a")", {"aa", "aaa"}, {"a"}},  // ambiguous: several stacks at once
  };
  for (const Case& c : cases) {
    std::shared_ptr<const Grammar> g = MustParse(c.gbnf);
    if (g == nullptr) continue;
    for (const std::string& s : c.accept) EXPECT_TRUE(Matches(g, s)) << c.gbnf << " on " << s;
    for (const std::string& s : c.refuse) EXPECT_FALSE(Matches(g, s)) << c.gbnf << " on " << s;
  }
}

TEST(GrammarTest, PrefixStatesAndNextBytes) {
  std::shared_ptr<const Grammar> g = MustParse(R"(root ::= "ab" [xy] | "ac")");
  GrammarMatcher m(g);
  EXPECT_FALSE(m.IsAccepting());
  EXPECT_TRUE(m.AcceptByte('a'));
  std::bitset<256> next = m.NextBytes();
  EXPECT_EQ(next.count(), 2u);
  EXPECT_TRUE(next.test('b') && next.test('c'));
  EXPECT_FALSE(m.AcceptByte('x'));  // refused, and the matcher is unchanged
  EXPECT_TRUE(m.AcceptByte('b'));
  EXPECT_FALSE(m.AcceptBytes("xz"));  // the whole run refused: unchanged
  EXPECT_TRUE(m.AcceptByte('y'));
  EXPECT_TRUE(m.IsAccepting());
  EXPECT_FALSE(m.CanContinue());
}

TEST(GrammarTest, EqualStatesHaveEqualKeys) {
  std::shared_ptr<const Grammar> g = MustParse(R"(root ::= ("a" | "b")* "c")");
  GrammarMatcher m1(g), m2(g);
  EXPECT_TRUE(m1.AcceptBytes("ab"));
  EXPECT_TRUE(m2.AcceptBytes("ba"));
  EXPECT_EQ(m1.StateKey(), m2.StateKey());
  EXPECT_TRUE(m2.AcceptBytes("c"));
  EXPECT_NE(m1.StateKey(), m2.StateKey());
}

TEST(GrammarTest, RightRecursionKeepsTheStackFlat) {
  // A long list through a right-recursive rule must not grow the stack (tail calls).
  std::shared_ptr<const Grammar> g = MustParse("root ::= \"x\" root | \"x\"");
  GrammarMatcher m(g);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(m.AcceptByte('x'));
  for (const auto& s : m.stacks()) EXPECT_LE(s.size(), 2u);
  EXPECT_TRUE(m.IsAccepting());
}

void ExpectError(const std::string& gbnf, const std::string& fragment) {
  absl::StatusOr<std::shared_ptr<const Grammar>> g = Grammar::Parse(gbnf);
  ASSERT_FALSE(g.ok()) << gbnf;
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find(fragment), std::string::npos)
      << g.status().message() << " lacks " << fragment;
}

TEST(GrammarTest, ErrorsNameTheProblemAndWhere) {
  ExpectError("", "no rules");
  ExpectError(R"(start ::= "a")", "no rule 'root'");
  ExpectError(R"(root ::= foo)", "undefined rule 'foo'");
  ExpectError("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
  ExpectError(R"(root ::= "abc)", "unterminated string");
  ExpectError(R"(root ::= [a-)", "unterminated character class");
  ExpectError(R"(root ::= [z-a])", "out of order");
  ExpectError(R"g(root ::= ("a")g", "unclosed '('");
  ExpectError(R"g(root ::= "a"))g", "unbalanced ')'");
  ExpectError(R"(root ::= "\q")", "unknown escape");
  ExpectError(R"(root ::= "\uD800")", "surrogate");
  ExpectError(R"(root ::= "a"{3,2})", "n < m");
  ExpectError(R"(root ::= "a"{20000})", "above 10000");
  ExpectError(R"(root ::= root "a" | "a")", "left recursion");
  ExpectError("root ::= a \"x\"\na ::= b\nb ::= \"\" | root", "left recursion");
  ExpectError(R"(root ::= ("a"?)*)", "left recursion");
  ExpectError(R"(root ::= "a" root)", "matches no finite string");
  ExpectError("root ::= \"a\"\n  @", "line 2, column 3");
  ExpectError("root = \"a\"", "expected '::='");
  ExpectError(std::string("root ::= ") + std::string(100, '(') + "\"a\"" + std::string(100, ')'),
              "nested deeper");
}

}  // namespace
}  // namespace kvserve::constrain
