// Regular expressions to GBNF: each construct compiled, parsed by Grammar and run against
// strings it must match in full and strings it must not (expected by hand, from the regex's
// meaning), and every refusal named with its byte offset.
#include "constrain/regex.h"

#include <memory>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "constrain/grammar.h"
#include "gtest/gtest.h"
#include "tests/base/small_stack.h"

namespace kvserve::constrain {
namespace {

std::shared_ptr<const Grammar> MustCompile(const std::string& gbnf) {
  absl::StatusOr<std::shared_ptr<const Grammar>> grammar = Grammar::Parse(gbnf);
  EXPECT_TRUE(grammar.ok()) << grammar.status() << "\n" << gbnf;
  return grammar.ok() ? *grammar : nullptr;
}

bool Matches(const std::shared_ptr<const Grammar>& grammar, const std::string& text) {
  GrammarMatcher matcher(grammar);
  return matcher.AcceptBytes(text) && matcher.IsAccepting();
}

struct Case {
  std::string pattern;
  std::vector<std::string> match;
  std::vector<std::string> no_match;
};

void ExpectCases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    absl::StatusOr<std::string> gbnf = RegexToGbnf(c.pattern);
    ASSERT_TRUE(gbnf.ok()) << c.pattern << ": " << gbnf.status();
    std::shared_ptr<const Grammar> grammar = MustCompile(*gbnf);
    if (grammar == nullptr) continue;
    for (const std::string& s : c.match) {
      EXPECT_TRUE(Matches(grammar, s)) << "/" << c.pattern << "/ should match \"" << s << "\"\n"
                                       << *gbnf;
    }
    for (const std::string& s : c.no_match) {
      EXPECT_FALSE(Matches(grammar, s))
          << "/" << c.pattern << "/ should not match \"" << s << "\"\n"
          << *gbnf;
    }
  }
}

TEST(RegexTest, LiteralsDotAndAnchors) {
  ExpectCases({
      {"abc", {"abc"}, {"", "ab", "abcd", "abd", "ABC"}},
      {"", {""}, {"a", " "}},
      {"a.c",
       {"abc", "a c", "a\tc",
        "a\xc3\xa9"
        "c",
        "a\xf0\x9f\x98\x80"
        "c"},
       {"a\nc", "ac", "abbc"}},
      {"^abc$", {"abc"}, {"xabc", "abcx", "^abc$"}},
      {"^a|b$", {"a", "b"}, {"ab", ""}},
      {"h\xc3\xa9llo", {"h\xc3\xa9llo"}, {"hello", "h\xc3\xa9llo!"}},
      {"#\"\\\\", {"#\"\\"}, {"#\"", "#"}},  // GBNF's specials in a literal
  });
}

TEST(RegexTest, Escapes) {
  ExpectCases({
      {"\\d\\w\\s",
       {"1a ", "9_\t", "0Z\n", "5z\r", "3q\f", "4q\v"},
       {"a1 ", "1- ", "11a", "1\xc3\xa9 "}},
      {"\\D\\W\\S", {"a-x", "a x", "\xc3\xa9\xc3\xa9\xc3\xa9"}, {"1-x", "a_x", "a- ", "a-\n"}},
      {"\\n\\r\\t\\f\\v\\0", {std::string("\n\r\t\f\v\0", 6)}, {"\n\r\t\f\v", "nrtfv0"}},
      {"\\x41\\u00e9\\u20AC",
       {"A\xc3\xa9\xe2\x82\xac"},
       {"A\xe9\xe2\x82\xac", "a\xc3\xa9\xe2\x82\xac"}},
      {"\\.\\*\\(\\)\\[\\]\\{\\}\\\\\\|\\^\\$\\?\\+\\/\\-\\ \\#\\\"",
       {".*()[]{}\\|^$?+/- #\""},
       {"a", ".*()[]{}\\|^$?+/-"}},
  });
}

TEST(RegexTest, Classes) {
  ExpectCases({
      {"[a-cx]", {"a", "b", "c", "x"}, {"d", "", "ab", "A"}},
      {"[^a-c]", {"d", "\xc3\xa9", "\n", "\xf0\x9f\x98\x80"}, {"a", "b", "c", "", "dd"}},
      {"[\\d_\\-]", {"5", "_", "-"}, {"a", "\\"}},
      {"[]a]", {"]", "a"}, {"b", "]a"}},
      {"[a-]", {"-", "a"}, {"b"}},
      {"[-a]", {"-", "a"}, {"b"}},
      {"[\\d-z]", {"-", "5", "z"}, {"a", "y"}},
      {"[\\b]", {"\b"}, {"b", "\\"}},
      {"[\\]\\\\^[\"#]", {"]", "\\", "^", "[", "\"", "#"}, {"a"}},
      {"[a^]", {"a", "^"}, {"b"}},
      {"[\xce\xb1-\xce\xb3]", {"\xce\xb2", "\xce\xb1", "\xce\xb3"}, {"\xce\xb4", "a"}},
      {"[^\\s]", {"a", "-"}, {" ", "\t", "\n"}},
      {"[\\s\\S]", {"a", "\n", "\xe2\x82\xac"}, {"", "ab"}},
      {"[^\\n]", {"a", "\r"}, {"\n"}},
      {"[.]", {"."}, {"a"}},
  });
}

TEST(RegexTest, GroupsAndAlternation) {
  ExpectCases({
      {"(ab)+", {"ab", "abab"}, {"", "aba", "a"}},
      {"(?:ab|cd)e", {"abe", "cde"}, {"abcde", "e", "abcd"}},
      {"(?<x>a)(?P<y>b)", {"ab"}, {"a", "b", "ba"}},
      {"cat|dog|", {"cat", "dog", ""}, {"cats", "catdog", "do"}},
      {"((a|b)c){2}", {"acbc", "acac", "bcbc"}, {"ac", "acbcac", "abcc"}},
      {"a(|b)c", {"ac", "abc"}, {"abbc"}},
      {"()", {""}, {"a"}},
  });
}

TEST(RegexTest, Quantifiers) {
  ExpectCases({
      {"a*", {"", "a", "aaaa"}, {"b", "ab"}},
      {"a+", {"a", "aaa"}, {"", "b"}},
      {"a?", {"", "a"}, {"aa"}},
      {"a{3}", {"aaa"}, {"aa", "aaaa"}},
      {"a{2,}", {"aa", "aaaaa"}, {"a", ""}},
      {"a{2,3}", {"aa", "aaa"}, {"a", "aaaa"}},
      {"a{,2}", {"", "a", "aa"}, {"aaa"}},
      {"a{0}b", {"b"}, {"ab"}},
      {"a*?b+?c??d{1,2}?", {"bd", "aabbcdd", "abd"}, {"ad", "bcddd", "abccd"}},
      {"a{x}", {"a{x}"}, {"a", "ax"}},
      {"a{", {"a{"}, {"a"}},
      {"a{1,x}", {"a{1,x}"}, {"a"}},
      {"x}", {"x}"}, {"x"}},
      {"[0-9]{1000}", {std::string(1000, '7')}, {std::string(999, '7'), std::string(1001, '7')}},
  });
}

// Repeating something that can match the empty string must neither loop (GBNF refuses left
// recursion) nor change the language.
TEST(RegexTest, RepeatedNullableGroups) {
  ExpectCases({
      {"(a*)*", {"", "a", "aaa"}, {"b"}},
      {"(a*)+", {"", "aa"}, {"b"}},
      {"(a?b?)+", {"", "a", "b", "ab", "ba", "aab", "abab"}, {"c", "abc"}},
      {"(|x){2,3}", {"", "x", "xx", "xxx"}, {"xxxx"}},
      {"(a|b*)*c", {"c", "ac", "bbc", "abac"}, {"", "ab"}},
      {"((a?)(b?))*", {"", "ab", "ba", "bbaa"}, {"c"}},
      {"(?:){5}", {""}, {"a"}},
      {"(a?){3}", {"", "a", "aa", "aaa"}, {"aaaa"}},
      {"(a{0,2}b?){2}", {"", "aaaa", "abab", "aab", "b"}, {"aaaaa", "bbb"}},
  });
}

TEST(RegexTest, JsonStringEncoding) {
  // The pattern a"\/<newline> applies to the decoded string; its JSON spellings differ.
  absl::StatusOr<std::string> expression =
      RegexToGbnfExpression("a\"\\\\/\\n.", RegexCharEncoding::kJsonString);
  ASSERT_TRUE(expression.ok()) << expression.status();
  std::shared_ptr<const Grammar> grammar = MustCompile(absl::StrCat("root ::= ", *expression));
  ASSERT_NE(grammar, nullptr);
  for (const char* text : {R"(a\"\\/\nx)", R"(a\"\\\/\nx)", R"(a\"\\/\u000ax)", R"(a\"\\/\u000A\t)",
                           R"(a\"\\/\n\u001f)", R"(a\"\\/\n\")"}) {
    EXPECT_TRUE(Matches(grammar, text)) << text << "\n" << *expression;
  }
  for (const char* text : {"a\"\\/\nx", R"(a"\\/\nx)", R"(a\"\/\nx)", R"(a\"\\/\nxx)",
                           R"(a\"\\/\n\n)", R"(a\"\\/\n\u000a)", R"(a\u0022\\/\nx)"}) {
    EXPECT_FALSE(Matches(grammar, text)) << text << "\n" << *expression;
  }
  // A raw-encoded expression of the same pattern matches the decoded text.
  expression = RegexToGbnfExpression("a\"\\\\/\\n.", RegexCharEncoding::kRaw);
  ASSERT_TRUE(expression.ok());
  grammar = MustCompile(absl::StrCat("root ::= ", *expression));
  ASSERT_NE(grammar, nullptr);
  EXPECT_TRUE(Matches(grammar, "a\"\\/\nx"));
  EXPECT_FALSE(Matches(grammar, R"(a\"\\/\nx)"));
}

TEST(RegexTest, GbnfLiteralEscapes) {
  EXPECT_EQ(GbnfLiteral("a\"\\\n#\xc3\xa9\x01"), R"("a\"\\\n\u0023\u00E9\u0001")");
  EXPECT_EQ(GbnfLiteral("\xf0\x9f\x98\x80"), R"("\U0001F600")");
  std::string text = "q\"\\\r\t#\xc3\xa9\xf0\x9f\x98\x80 ]-[";
  std::shared_ptr<const Grammar> grammar =
      MustCompile(absl::StrCat("root ::= ", GbnfLiteral(text)));
  ASSERT_NE(grammar, nullptr);
  EXPECT_TRUE(Matches(grammar, text));
  EXPECT_FALSE(Matches(grammar, "q"));
}

void ExpectRefused(const std::string& pattern, const std::string& message) {
  absl::StatusOr<std::string> gbnf = RegexToGbnf(pattern);
  ASSERT_FALSE(gbnf.ok()) << pattern << " compiled to " << *gbnf;
  EXPECT_EQ(gbnf.status().code(), absl::StatusCode::kInvalidArgument) << pattern;
  EXPECT_EQ(gbnf.status().message(), message) << pattern;
}

TEST(RegexTest, RefusalsNameTheOffset) {
  ExpectRefused("a\\1", "regex at offset 1: backreferences are not supported");
  ExpectRefused("(?<n>a)\\k<n>", "regex at offset 7: backreferences are not supported");
  ExpectRefused("(?P<n>a)(?P=n)", "regex at offset 8: backreferences are not supported");
  ExpectRefused("(?=a)", "regex at offset 0: lookaround is not supported");
  ExpectRefused("a(?!b)", "regex at offset 1: lookaround is not supported");
  ExpectRefused("(?<=a)b", "regex at offset 0: lookaround is not supported");
  ExpectRefused("(?<!a)b", "regex at offset 0: lookaround is not supported");
  ExpectRefused("(?i)a", "regex at offset 0: this group syntax (inline flags?) is not supported");
  ExpectRefused("(?<1>a)", "regex at offset 0: malformed group name");
  ExpectRefused("ab\\b", "regex at offset 2: word boundaries (\\b) are not supported");
  ExpectRefused("\\Ba", "regex at offset 0: word boundaries (\\B) are not supported");
  ExpectRefused("\\Aa", "regex at offset 0: anchors (\\A) are not supported");
  ExpectRefused("a\\z", "regex at offset 1: anchors (\\z) are not supported");
  ExpectRefused("a^", "regex at offset 1: '^' is only supported at the start of the pattern");
  ExpectRefused("a|^b", "regex at offset 2: '^' is only supported at the start of the pattern");
  ExpectRefused("a$b", "regex at offset 1: '$' is only supported at the end of the pattern");
  ExpectRefused("(a$)", "regex at offset 2: '$' is only supported at the end of the pattern");
  ExpectRefused("(a", "regex at offset 0: unbalanced '(': no matching ')'");
  ExpectRefused("x(a(b)", "regex at offset 1: unbalanced '(': no matching ')'");
  ExpectRefused("a)", "regex at offset 1: unbalanced ')'");
  ExpectRefused("[z-a]", "regex at offset 1: reversed range in a class");
  ExpectRefused("[abc", "regex at offset 0: unterminated character class");
  ExpectRefused("[a-", "regex at offset 0: unterminated character class");
  ExpectRefused("a{1001}", "regex at offset 1: repetition count over 1000");
  ExpectRefused("a{2,1001}", "regex at offset 1: repetition count over 1000");
  ExpectRefused("a{99999999999}", "regex at offset 1: repetition count over 1000");
  ExpectRefused("a{3,2}", "regex at offset 1: repetition {m,n} with m > n");
  ExpectRefused("*a", "regex at offset 0: quantifier with nothing to repeat");
  ExpectRefused("a|+", "regex at offset 2: quantifier with nothing to repeat");
  ExpectRefused("({2})", "regex at offset 1: quantifier with nothing to repeat");
  ExpectRefused("a**", "regex at offset 2: a quantifier cannot follow a quantifier");
  ExpectRefused("a{2}{3}", "regex at offset 4: a quantifier cannot follow a quantifier");
  ExpectRefused("a*+", "regex at offset 2: possessive quantifiers are not supported");
  ExpectRefused("a\\", "regex at offset 1: the pattern ends with '\\'");
  ExpectRefused("\\p{L}", "regex at offset 0: this escape is not supported");
  ExpectRefused("\\012", "regex at offset 0: octal escapes are not supported");
  ExpectRefused("\\xZZ", "regex at offset 0: escape needs 2 hex digits");
  ExpectRefused("\\u12", "regex at offset 0: escape needs 4 hex digits");
  ExpectRefused("[^\\s\\S]", "regex at offset 0: the character class matches nothing");
  ExpectRefused("\\uD800", "regex at offset 0: a surrogate code point matches nothing");
  ExpectRefused("ab\xff", "regex at offset 2: not well-formed UTF-8");
}

TEST(RegexTest, GroupNestingIsBounded) {
  std::string ok_pattern = std::string(64, '(') + "a" + std::string(64, ')');
  ExpectCases({{ok_pattern, {"a"}, {""}}});
  ExpectRefused(std::string(65, '(') + "a" + std::string(65, ')'),
                "regex at offset 64: groups nested more than 64 deep");
}

TEST(RegexTest, ExpressionIsOneItem) {
  // Quantified as a whole inside a larger grammar: the expression must be a single item.
  const std::vector<Case> cases = {
      {"ab|c", {"abc!", "cab!", "cc!"}, {"ab!", "abc", "c!"}},
      {"abc", {"abcabc!"}, {"abc!"}},
      {"a+", {"aa!", "aaa!"}, {"a!"}},
      {"[a-c]", {"ab!"}, {"a!"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> expression =
        RegexToGbnfExpression(c.pattern, RegexCharEncoding::kRaw);
    ASSERT_TRUE(expression.ok());
    std::shared_ptr<const Grammar> grammar =
        MustCompile(absl::StrCat("root ::= ", *expression, "{2} \"!\""));
    ASSERT_NE(grammar, nullptr);
    for (const std::string& s : c.match) EXPECT_TRUE(Matches(grammar, s)) << c.pattern << " " << s;
    for (const std::string& s : c.no_match) {
      EXPECT_FALSE(Matches(grammar, s)) << c.pattern << " " << s;
    }
  }
}

// A random pattern over a few characters, in the syntax std::regex (ECMAScript) shares.
std::string RandomPattern(std::mt19937* rng, int depth, const std::vector<std::string>& atoms) {
  auto pick = [&](int n) { return static_cast<int>((*rng)() % n); };
  static const char* const kQuantifiers[] = {"*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "??"};
  std::string out;
  int items = 1 + pick(3);
  for (int i = 0; i < items; ++i) {
    std::string item;
    if (depth > 0 && pick(3) == 0) {
      item = "(?:" + RandomPattern(rng, depth - 1, atoms);
      if (pick(2) == 0)
        item += "|" + (pick(3) == 0 ? std::string() : RandomPattern(rng, depth - 1, atoms));
      item += ")";
    } else {
      item = atoms[pick(static_cast<int>(atoms.size()))];
    }
    if (pick(2) == 0) item += kQuantifiers[pick(8)];
    out += item;
  }
  return out;
}

// Differential: full matches by std::regex (an independent implementation) and by the grammar
// agree on every short string over the alphabet.
TEST(RegexTest, AgreesWithStdRegexOnRandomPatterns) {
  std::mt19937 rng(20261204);
  const std::string alphabet = "ab1c\n";
  std::vector<std::string> texts = {""};
  for (size_t i = 0; i < texts.size() && texts.size() < 800; ++i) {
    if (texts[i].size() >= 4) continue;
    for (char c : alphabet) texts.push_back(texts[i] + c);
  }
  for (int round = 0; round < 150; ++round) {
    std::string pattern =
        RandomPattern(&rng, 2, {"a", "b", "1", ".", "[ab]", "[^a]", "\\d", "\\w", "[a-c1]"});
    std::regex oracle(pattern, std::regex::ECMAScript);
    absl::StatusOr<std::string> gbnf = RegexToGbnf(pattern);
    ASSERT_TRUE(gbnf.ok()) << pattern << ": " << gbnf.status();
    std::shared_ptr<const Grammar> grammar = MustCompile(*gbnf);
    ASSERT_NE(grammar, nullptr) << pattern;
    for (const std::string& text : texts) {
      ASSERT_EQ(Matches(grammar, text), std::regex_match(text, oracle))
          << "/" << pattern << "/ on \"" << text << "\"\n"
          << *gbnf;
    }
  }
}

// Every JSON spelling of `text` over {a " \ / newline}, each with whether json-string
// encoding derives it (regex.h: a raw, \" only, \\ only, / or \/, \n or \u000a / \u000A; \u0061
// and \u0022 are valid JSON but not derived; a raw " or newline is not JSON; a raw backslash
// is left out, as it would spell a different text).
std::vector<std::pair<std::string, bool>> JsonSpellings(const std::string& text) {
  std::vector<std::pair<std::string, bool>> out = {{"", true}};
  for (char c : text) {
    std::vector<std::pair<std::string, bool>> options;
    if (c == 'a') options = {{"a", true}, {"\\u0061", false}};
    if (c == '"') options = {{"\\\"", true}, {"\\u0022", false}, {"\"", false}};
    if (c == '\\') options = {{"\\\\", true}};
    if (c == '/') options = {{"/", true}, {"\\/", true}};
    if (c == '\n') options = {{"\\n", true}, {"\\u000a", true}, {"\\u000A", true}, {"\n", false}};
    std::vector<std::pair<std::string, bool>> next;
    for (const auto& [prefix, derived] : out) {
      for (const auto& [spelling, option_derived] : options) {
        next.push_back({prefix + spelling, derived && option_derived});
      }
    }
    out = std::move(next);
  }
  return out;
}

// Differential, json-string encoding: a spelling is accepted exactly when it is derived and
// std::regex fully matches the decoded text.
TEST(RegexTest, JsonEncodingAgreesWithStdRegexOnDecodedText) {
  std::mt19937 rng(4);
  const std::string alphabet = "a\"\\/\n";
  std::vector<std::string> texts = {""};
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].size() >= 3) continue;
    for (char c : alphabet) texts.push_back(texts[i] + c);
  }
  for (int round = 0; round < 80; ++round) {
    std::string pattern = RandomPattern(
        &rng, 2, {"a", "\"", "\\\\", "/", "\\n", ".", "[^a]", "[\"/]", "\\W", "[\\s\\\\]"});
    std::regex oracle(pattern, std::regex::ECMAScript);
    absl::StatusOr<std::string> expression =
        RegexToGbnfExpression(pattern, RegexCharEncoding::kJsonString);
    ASSERT_TRUE(expression.ok()) << pattern << ": " << expression.status();
    std::shared_ptr<const Grammar> grammar = MustCompile(absl::StrCat("root ::= ", *expression));
    ASSERT_NE(grammar, nullptr) << pattern;
    for (const std::string& text : texts) {
      bool match = std::regex_match(text, oracle);
      for (const auto& [spelling, derived] : JsonSpellings(text)) {
        ASSERT_EQ(Matches(grammar, spelling), match && derived)
            << "/" << pattern << "/ on " << spelling << "\n"
            << *expression;
      }
    }
  }
}

// The deepest groups allowed, on a small thread stack: compiled, or refused with a named error.
TEST(RegexTest, DeepGroupsOnASmallStack) {
  std::string pattern = std::string(64, '(') + "a|b" + std::string(64, ')') + "*";
  absl::StatusOr<std::string> on_main = RegexToGbnf(pattern);
  ASSERT_TRUE(on_main.ok()) << on_main.status();
  absl::StatusOr<std::string> on_small("");
  kvserve::testing::RunOnStack(100 * 1024, [&] { on_small = RegexToGbnf(pattern); });
  if (!on_small.ok()) {
    EXPECT_NE(on_small.status().message().find("too deeply"), std::string::npos)
        << on_small.status();
  } else {
    EXPECT_EQ(*on_small, *on_main);
  }
}

}  // namespace
}  // namespace kvserve::constrain
