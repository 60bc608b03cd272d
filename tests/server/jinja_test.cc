// Units of the Jinja subset (lexer, parser, interpreter, values) with hand-derived expectations
// from jinja2's documented semantics. chat_template_test.py compares whole templates with jinja2.
#include <string>

#include "gtest/gtest.h"
#include "server/models/chat_template.h"
#include "server/models/jinja/interpreter.h"
#include "server/models/jinja/lexer.h"
#include "server/models/jinja/parser.h"
#include "server/models/jinja/value.h"
#include "tests/base/small_stack.h"

namespace kvserve::server::jinja {
namespace {

std::string Render(const std::string& source, const ValueDict& globals = {}) {
  absl::StatusOr<Template> t = Template::Parse(source);
  if (!t.ok()) return "PARSE: " + std::string(t.status().message());
  absl::StatusOr<std::string> out = t->Render(globals);
  if (!out.ok()) return "RENDER: " + std::string(out.status().message());
  return *out;
}

std::string TextOf(const std::vector<Token>& tokens) {
  std::string out;
  for (const Token& t : tokens) {
    if (t.kind == Token::Kind::kText) out += "[" + t.text + "]";
  }
  return out;
}

TEST(JinjaLexerTest, NamesNumbersStringsOperators) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize("{{ a.b(1, 2.5e1) // 'x\\n\\u00e9' }}", {});
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 13u);
  EXPECT_EQ((*tokens)[0].kind, Token::Kind::kPrintBegin);
  EXPECT_EQ((*tokens)[1].text, "a");
  EXPECT_EQ((*tokens)[2].text, ".");
  EXPECT_EQ((*tokens)[5].int_value, 1);
  EXPECT_EQ((*tokens)[7].kind, Token::Kind::kFloat);
  EXPECT_DOUBLE_EQ((*tokens)[7].float_value, 25.0);
  EXPECT_EQ((*tokens)[9].text, "//");
  EXPECT_EQ((*tokens)[10].text, "x\n\xc3\xa9");
  EXPECT_EQ((*tokens)[11].kind, Token::Kind::kPrintEnd);
}

TEST(JinjaLexerTest, WhitespaceControl) {
  LexerOptions plain{false, false};
  EXPECT_EQ(TextOf(*Tokenize("a  \n {%- if x %} b", plain)), "[a][ b]");
  EXPECT_EQ(TextOf(*Tokenize("a {% if x -%} \n b", plain)), "[a ][b]");
  EXPECT_EQ(TextOf(*Tokenize("a {{- x -}}\n b", plain)), "[a][b]");
  EXPECT_EQ(TextOf(*Tokenize("a {#- c -#}\n b", plain)), "[a][b]");
}

TEST(JinjaLexerTest, TrimBlocksAndLstripBlocks) {
  LexerOptions both{true, true};
  // trim_blocks drops one newline after %} and #}, not after }}.
  EXPECT_EQ(TextOf(*Tokenize("{% if x %}\n\nA{{ y }}\nB{# c #}\nC", both)), "[\nA][\nB][C]");
  // lstrip_blocks drops indentation before {% and {#, not before {{, nor with {%+.
  EXPECT_EQ(TextOf(*Tokenize("x\n    {% if y %}\n  {{ z }}\n  {%+ endif %}", both)),
            "[x\n][  ][\n  ]");
  // Not when text precedes the tag on its line.
  EXPECT_EQ(TextOf(*Tokenize("x\n  y {% if z %}{% endif %}", both)), "[x\n  y ]");
  // One trailing newline of the template is dropped; \r\n becomes \n.
  EXPECT_EQ(TextOf(*Tokenize("a\r\nb\n", both)), "[a\nb]");
  // +%} keeps the newline trim_blocks would drop.
  EXPECT_EQ(TextOf(*Tokenize("{% if x +%}\nA", both)), "[\nA]");
}

TEST(JinjaLexerTest, Errors) {
  EXPECT_FALSE(Tokenize("{{ 'abc }}", {}).ok());
  EXPECT_FALSE(Tokenize("{# never closed", {}).ok());
  absl::Status s = Tokenize("a\nb\n{{ x ) }}", {}).status();
  EXPECT_NE(s.message().find("line 3"), std::string_view::npos) << s;
}

TEST(JinjaParserTest, PrecedenceAsJinja2) {
  // `|` binds tighter than `-`; `~` is looser than `*`; `not` is looser than `in`.
  const ValueDict globals = {{"xs", Value::List({Value::Int(1), Value::Int(2), Value::Int(3)})}};
  EXPECT_EQ(Render("{{ xs|length - 1 }}", globals), "2");
  EXPECT_EQ(Render("{{ 1 ~ 2 * 3 }}", globals), "16");
  EXPECT_EQ(Render("{{ not 4 in xs }}", globals), "True");
  EXPECT_EQ(Render("{{ -2 ** 2 }}", globals), "4");  // jinja2: unary minus binds first
  EXPECT_EQ(Render("{{ 2 + 3 * 4 }}", globals), "14");
  EXPECT_EQ(Render("{{ 'a' if false else 'b' if true else 'c' }}", globals), "b");
}

TEST(JinjaParserTest, UnsupportedConstructsNamedWithLine) {
  absl::Status s = Template::Parse("x\n{% include 'y' %}").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'{% include %}'"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("line 2"), std::string_view::npos) << s;
  s = Template::Parse("{% extends 'base' %}").status();
  EXPECT_NE(s.message().find("'{% extends %}'"), std::string_view::npos) << s;
  s = Template::Parse("\n\n{{ x | frobnicate }}").status();
  EXPECT_NE(s.message().find("filter 'frobnicate'"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("line 3"), std::string_view::npos) << s;
  s = Template::Parse("{% if x %}never closed").status();
  EXPECT_NE(s.message().find("endif"), std::string_view::npos) << s;
  EXPECT_FALSE(Template::Parse("{% for x in y recursive %}{% endfor %}").ok());
}

TEST(JinjaInterpreterTest, ValuesPrintLikePython) {
  EXPECT_EQ(Render("{{ none }} {{ true }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 7 / 2 }}"),
            "None True 1.0 0.30000000000000004 1e+16 3.5");
  EXPECT_EQ(Render("{{ [1, 'a', none] }} {{ {'k': \"it's\"} }}"), "[1, 'a', None] {'k': \"it's\"}");
  EXPECT_EQ(Render("{{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}"), "-4 2 1024");
  EXPECT_EQ(Render("[{{ missing }}]"), "[]");
}

TEST(JinjaInterpreterTest, TruthinessAndOperands) {
  EXPECT_EQ(Render("{{ '' or 'x' }} {{ 0 and 1 }} {{ [] or 'e' }} {{ 'a' and 'b' }}"), "x 0 e b");
  EXPECT_EQ(Render("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] == [1, 2] }}"),
            "True True True True");
  EXPECT_EQ(Render("{{ 'ell' in 'hello' }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }}"),
            "True True True");
  EXPECT_NE(Render("{{ 'a' + 1 }}").find("RENDER"), std::string::npos);
  EXPECT_NE(Render("{{ missing.attr }}").find("undefined"), std::string::npos);
}

TEST(JinjaInterpreterTest, LoopsScopesAndNamespaces) {
  EXPECT_EQ(
      Render("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
             "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
      "103TrueFalse3;212FalseFalse3;321FalseTrue3;");
  // set inside a loop stays there; a namespace carries state out.
  EXPECT_EQ(Render("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for x in [1, 2] %}"
                   "{% set n = n + x %}{% set ns.n = ns.n + x %}{% endfor %}{{ n }} {{ ns.n }}"),
            "0 3");
  EXPECT_EQ(Render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"),
            "2242");
  EXPECT_EQ(Render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}"),
            "a=1 b=2 ");
  EXPECT_EQ(Render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Render("{% for i in range(6) %}{% if i == 1 %}{% continue %}{% endif %}"
                   "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "023");
  EXPECT_EQ(Render("{% if true %}{% set leak = 'yes' %}{% endif %}{{ leak }}"), "yes");
}

TEST(JinjaInterpreterTest, FiltersAndMethods) {
  EXPECT_EQ(Render("{{ '  hi \n' | trim }}|{{ 'ab' | upper }}|{{ 'hello world' | title }}"),
            "hi|AB|Hello World");
  EXPECT_EQ(Render("{{ 'a,b' .split(',') }} {{ '  a  b '.split() }} {{ 'xhix'.strip('x') }}"),
            "['a', 'b'] ['a', 'b'] hi");
  EXPECT_EQ(Render("{{ 'hello'[::-1] }} {{ 'hello'[1:] }} {{ [1, 2, 3][-2:] }} {{ 'héllo'[1] }}"),
            "olleh ello [2, 3] é");
  EXPECT_EQ(Render("{{ {'b': 1, 'a': [1, 'é']} | tojson }}"), "{\"b\": 1, \"a\": [1, \"é\"]}");
  EXPECT_EQ(Render("{{ {'a': [1]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(Render("{{ 'q\"\\n' | tojson }}"), "\"q\\\"\\n\"");
  EXPECT_EQ(
      Render("{{ missing | default('d') }} {{ '' | default('d', true) }} {{ [3, 4] | last }}"),
      "d d 4");
  const ValueDict globals = {{"ms", Value::List({Value::Dict({{"role", Value::String("system")}}),
                                                 Value::Dict({{"role", Value::String("user")}})})}};
  EXPECT_EQ(Render("{{ ms | selectattr('role', 'equalto', 'user') | list | length }}"
                   "{{ ms | map(attribute='role') | join(',') }}",
                   globals),
            "1system,user");
  EXPECT_EQ(Render("{{ {'a': 1}.get('b', 'dflt') }} {{ {'a': 1}.get('a') }} {{ "
                   "'x'.startswith(('y', 'x')) }}"),
            "dflt 1 True");
}

TEST(JinjaInterpreterTest, MacrosAndBlockSet) {
  EXPECT_EQ(
      Render(
          "{% macro t(n, b='x') %}<{{ n }}>{{ b }}{% endmacro %}{{ t('a') }}{{ t('c', b='d') }}"),
      "<a>x<c>d");
  EXPECT_EQ(Render("{% set s %}[{{ 1 + 1 }}]{% endset %}{{ s }}{{ s | length }}"), "[2]3");
}

TEST(JinjaValueTest, PythonFloatRepr) {
  EXPECT_EQ(PythonFloatRepr(1.0), "1.0");
  EXPECT_EQ(PythonFloatRepr(0.0001), "0.0001");
  EXPECT_EQ(PythonFloatRepr(0.00001), "1e-05");
  EXPECT_EQ(PythonFloatRepr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(PythonFloatRepr(-2.5), "-2.5");
  EXPECT_EQ(PythonFloatRepr(1e15), "1000000000000000.0");
}

TEST(ChatTemplateTest, RendersMessagesAndRaises) {
  absl::StatusOr<std::unique_ptr<ChatTemplate>> t = ChatTemplate::Parse(
      "{{ bos_token }}{% for m in messages %}{% if m.role == 'bad' %}"
      "{{ raise_exception('bad role ' + m.role) }}{% endif %}<{{ m.role }}>{{ m.content }}\n"
      "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}{{ tools is none }}");
  ASSERT_TRUE(t.ok()) << t.status();
  ChatTemplateInputs in;
  in.bos_token = "<s>";
  in.messages = {{"user", "hi"}, {"assistant", "yo"}};
  absl::StatusOr<std::string> out = (*t)->Render(in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "<s><user>hi\n<assistant>yo\n<assistant>True");
  in.add_generation_prompt = false;
  EXPECT_EQ(*(*t)->Render(in), "<s><user>hi\n<assistant>yo\nTrue");
  in.messages.push_back({"bad", "x"});
  absl::Status s = (*t)->Render(in).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bad role bad"), std::string_view::npos) << s;
}

}  // namespace
}  // namespace kvserve::server::jinja

namespace kvserve::server::jinja {
namespace {

std::string NestedIfs(int levels) {
  std::string t;
  for (int i = 0; i < levels; ++i) t += "{% if true %}";
  t += "x";
  for (int i = 0; i < levels; ++i) t += "{% endif %}";
  return t;
}

// The hardening issue's crash: a 12-level nested {% if %} overflowed an HTTP worker's stack.
TEST(JinjaNestingTest, RealisticNestingRendersAndDeepNestingIsANamedError) {
  EXPECT_EQ(Render(NestedIfs(12)), "x");
  EXPECT_EQ(Render(NestedIfs(100)), "x");
  const std::string deep = Render(NestedIfs(1000));
  EXPECT_NE(deep.find("PARSE: chat template line 1: blocks and expressions nest deeper than 128"),
            std::string::npos)
      << deep;
  const std::string parens =
      Render("{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}");
  EXPECT_NE(parens.find("PARSE: chat template line 1: blocks and expressions nest deeper"),
            std::string::npos)
      << parens;
  std::string many_nots;
  for (int i = 0; i < 1000; ++i) many_nots += "not ";
  const std::string nots = Render("{{ " + many_nots + "1 }}");
  EXPECT_NE(nots.find("PARSE:"), std::string::npos) << nots;
  const std::string minus = Render("{{ " + std::string(1000, '-') + "1 }}");
  EXPECT_NE(minus.find("PARSE:"), std::string::npos) << minus;
}

TEST(JinjaNestingTest, EndlessMacroRecursionIsARenderError) {
  const std::string out = Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_NE(out.find("RENDER: chat template line 1: the template nests too deeply to render"),
            std::string::npos)
      << out;
}

TEST(JinjaNestingTest, ValuesNestingTooDeeplyAreARenderError) {
  const std::string ok = Render(
      "{% set ns = namespace(x=[]) %}{% for i in range(3) %}{% set ns.x = [ns.x] %}{% endfor %}"
      "{{ ns.x }}");
  EXPECT_EQ(ok, "[[[[]]]]");
  const std::string out = Render(
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
      "{% endfor %}{{ ns.x }}");
  EXPECT_NE(out.find("RENDER: chat template line 1: a value nests lists and dicts deeper than 64"),
            std::string::npos)
      << out;
}

// On a stack smaller than an HTTP worker's, parsing and rendering stop with an error where the
// stack runs short; nothing overflows.
TEST(JinjaNestingTest, SmallStacksGetAnErrorNotACrash) {
  for (const int levels : {12, 60, 127}) {
    std::string out;
    kvserve::testing::RunOnStack(96 * 1024, [&] { out = Render(NestedIfs(levels)); });
    EXPECT_TRUE(out == "x" || out.find("nest") != std::string::npos) << levels << ": " << out;
  }
  absl::StatusOr<Template> t = Template::Parse(NestedIfs(100));
  ASSERT_TRUE(t.ok()) << t.status();
  std::string out;
  kvserve::testing::RunOnStack(64 * 1024, [&] {
    absl::StatusOr<std::string> r = t->Render({});
    out = r.ok() ? *r : std::string(r.status().message());
  });
  EXPECT_NE(out.find("the template nests too deeply to render"), std::string::npos) << out;
}

// Found by tests/fuzz/jinja_fuzzer: std::stoll threw on a literal past int64_t.
TEST(JinjaLimitsTest, NumberLiteralsOutOfRange) {
  EXPECT_EQ(Render("{{ 9223372036854775807 }}"), "9223372036854775807");
  EXPECT_EQ(Render("{{ 99999999999999999999 }}"),
            "PARSE: chat template line 1: integer literal 99999999999999999999 is out of range");
  EXPECT_EQ(Render("{{ 1e999 }}"), "inf");  // Python's float('1e999')
}

// Python's ints are unbounded; ours are int64_t, and a result past it is an error (it was
// undefined behaviour).
TEST(JinjaLimitsTest, IntegerOverflowIsARenderError) {
  const std::string kOverflow = "RENDER: chat template line 1: integer overflow in ";
  EXPECT_EQ(Render("{{ 9223372036854775807 + 1 }}"), kOverflow + "+");
  EXPECT_EQ(Render("{{ -9223372036854775807 - 2 }}"), kOverflow + "-");
  EXPECT_EQ(Render("{{ 4294967296 * 4294967296 }}"), kOverflow + "*");
  EXPECT_EQ(Render("{{ 2 ** 63 }}"), kOverflow + "**");
  EXPECT_EQ(Render("{{ (-9223372036854775807 - 1) // -1 }}"), kOverflow + "//");
  EXPECT_EQ(Render("{{ -(-9223372036854775807 - 1) }}"), kOverflow + "unary -");
  EXPECT_EQ(Render("{{ (-9223372036854775807 - 1) | abs }}"), kOverflow + "abs");
  EXPECT_NE(Render("{{ 1e300 | int }}").find("int: 1e+300 is out of range"), std::string::npos);
  // Results that fit are Python's.
  EXPECT_EQ(Render("{{ 2 ** 62 }} {{ 3 ** 4 }} {{ 0 ** 0 }} {{ 1 ** 9223372036854775807 }}"),
            "4611686018427387904 81 1 1");
  EXPECT_EQ(
      Render("{{ (-9223372036854775807 - 1) % -1 }} {{ 7 // -1 }} {{ 7 % -1 }} {{ -7 // 2 }}"),
      "0 -7 0 -4");
  EXPECT_EQ(Render("{{ (-5) | abs }} {{ 2.5e3 | int }}"), "5 2500");
}

// A render's time and memory are bounded, whatever the template.
TEST(JinjaLimitsTest, RenderCostIsBounded) {
  const std::string steps =
      Render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  EXPECT_NE(steps.find("the template takes more than 2000000 steps to render"), std::string::npos)
      << steps;
  EXPECT_EQ(Render("{{ ('x' * 1000 * 1000) | length }}"), "1000000");
  for (const char* big : {"{{ 'ab' * 100000000 }}", "{{ ([1] * 2000000) | length }}",
                          "{{ (['x' * 1000000] * 100) | length }}",
                          "{{ ('x' * 1000000).replace('x', 'yyyyyyyyyyyyyyyyyyyyyy') }}",
                          "{{ ('x' * 1000000) | replace('', 'yyyyyyyyyyyyyyyyyyyyyy') }}",
                          "{{ ('x' * 10000000) ~ ('x' * 10000000) }}",
                          // Found by jinja_fuzzer: joining a string's characters repeatedly.
                          "{{ ('x' * 10000) | join('y' * 100) | join('z' * 100) }}",
                          "{{ ('y' * 100).join('x' * 1000000) }}"}) {
    const std::string out = Render(big);
    EXPECT_NE(out.find("would build a value over 16777216 bytes or 1048576 items"),
              std::string::npos)
        << big << ": " << out.substr(0, 200);
  }
  const std::string output = Render("{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}");
  EXPECT_NE(output.find("the rendered text exceeds 67108864 bytes"), std::string::npos)
      << output.substr(0, 200);
  EXPECT_NE(Render("{{ [1] | tojson(indent=1000) }}").find("an indent over 64 is not supported"),
            std::string::npos);
  EXPECT_EQ(Render("{{ [1] | tojson(indent=2) }}"), "[\n  1\n]");
}

// A list holding another twice, doubled 40 times, takes 40 small lists of memory but prints
// 2^40 items: printing, comparing or serializing it used to run (and allocate) without bound.
TEST(JinjaLimitsTest, SelfNestingListsAreRefusedBeforeTheyAreWalked) {
  const std::string doubled =
      "{% set ns = namespace(a=[1]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}"
      "{% endfor %}";
  for (const char* use : {"{{ ns.a }}", "{{ ns.a ~ 'x' }}", "{{ ns.a | tojson }}",
                          "{{ ns.a == ns.a }}", "{{ [ns.a] | join(',') }}", "{{ ns.a | string }}",
                          "{{ ns.a | length }}"}) {
    const std::string out = Render(doubled + use);
    EXPECT_NE(out.find("a value holds more than 67108864 items and bytes"), std::string::npos)
        << use << ": " << out.substr(0, 200);
  }
  // Doubled 10 times it is small, and prints like Python.
  const std::string small =
      Render("{% set ns = namespace(a=[1]) %}{% for i in range(10) %}{% set ns.a = [ns.a, ns.a] "
             "%}{% endfor %}{{ ns.a | string | length }}");
  // len(str(a)) for a = [1] doubled k times: s(0) = 3, s(k) = 2 s(k-1) + 4.
  int64_t expect = 3;
  for (int k = 0; k < 10; ++k) expect = 2 * expect + 4;
  EXPECT_EQ(small, std::to_string(expect));
}

// Found by tests/fuzz/jinja_fuzzer: `ns.n = ns` made a cycle of shared pointers (leaked on every
// render, and printing it would never end).
TEST(JinjaLimitsTest, NamespacesCannotHoldNamespaces) {
  for (const char* source :
       {"{% set ns = namespace(n=0) %}{% set ns.n = ns %}",
        "{% set ns = namespace(n=0) %}{% set ns.n = [1, {'a': ns}] %}",
        "{% set a = namespace() %}{% set ns = namespace(n=0) %}{% set ns.n = a %}"}) {
    const std::string out = Render(source);
    EXPECT_NE(out.find("RENDER: chat template line 1: cannot assign a value holding a namespace() "
                       "to 'ns.n'"),
              std::string::npos)
        << source << ": " << out;
  }
  EXPECT_EQ(Render("{% set ns = namespace(n=0) %}{% set ns.n = [1, {'a': 'b'}] %}{{ ns.n }}"),
            "[1, {'a': 'b'}]");
}

}  // namespace
}  // namespace kvserve::server::jinja
