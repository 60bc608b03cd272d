// Tool calls: the format a template teaches, calls read from whole and streamed outputs (and
// text that only looks like one left as content), and the grammar that forces a valid call.
#include "server/frontend/tool_calls.h"

#include <memory>
#include <string>
#include <vector>

#include "constrain/grammar.h"
#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

TEST(ToolCallsTest, DetectsTheFormatFromTheTemplate) {
  EXPECT_EQ(DetectToolCallFormat("... <tool_call>\\n{...}</tool_call> ..."),
            ToolCallFormat::kHermes);
  EXPECT_EQ(DetectToolCallFormat("{{- '[TOOL_CALLS] [' }}"), ToolCallFormat::kMistral);
  EXPECT_EQ(DetectToolCallFormat("{%- if tools %}Environment: ipython{% endif %}"),
            ToolCallFormat::kLlama3Json);
  EXPECT_EQ(DetectToolCallFormat("{{ '<|python_tag|>' }}"), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(DetectToolCallFormat("{% for m in messages %}{{ m.content }}{% endfor %}"),
            ToolCallFormat::kNone);
}

TEST(ToolCallsTest, ReadsHermesCallsAndKeepsTheRestAsContent) {
  ToolOutput out = ParseToolCalls(
      ToolCallFormat::kHermes,
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n"
      "</tool_call>");
  ASSERT_EQ(out.calls.size(), 2u);
  EXPECT_EQ(out.calls[0].name, "get_weather");
  EXPECT_EQ(out.calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(out.calls[1].name, "noop");
  EXPECT_EQ(out.calls[1].arguments, "{}");
  EXPECT_EQ(out.content, "Let me check.");
  EXPECT_EQ(out.calls[0].id.rfind("call_", 0), 0u);
  EXPECT_EQ(out.calls[0].id.size(), 29u);
  EXPECT_NE(out.calls[0].id, out.calls[1].id);
  // Not JSON, no name, arguments not an object: the text stays content.
  for (const char* text :
       {"<tool_call>\n{\"name\": \"f\", \"arguments\": {\n</tool_call>",
        "<tool_call>{\"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": 3}</tool_call>", "plain text"}) {
    ToolOutput plain = ParseToolCalls(ToolCallFormat::kHermes, text);
    EXPECT_TRUE(plain.calls.empty()) << text;
    EXPECT_EQ(plain.content, text);
  }
}

TEST(ToolCallsTest, ReadsLlama3AndMistralCalls) {
  ToolOutput llama = ParseToolCalls(
      ToolCallFormat::kLlama3Json,
      "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
  ASSERT_EQ(llama.calls.size(), 1u);
  EXPECT_EQ(llama.calls[0].arguments, "{\"city\":\"Oslo\"}");
  EXPECT_TRUE(llama.content.empty());
  // Arguments given as JSON text are read too.
  ToolOutput text_args = ParseToolCalls(ToolCallFormat::kLlama3Json,
                                        "{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}");
  ASSERT_EQ(text_args.calls.size(), 1u);
  EXPECT_EQ(text_args.calls[0].arguments, "{\"a\":1}");
  EXPECT_TRUE(ParseToolCalls(ToolCallFormat::kLlama3Json, "The answer is {x}").calls.empty());

  for (const char* text :
       {"[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": "
        "{\"x\": [1, 2]}}]",
        "[{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": {\"x\": [1, "
        "2]}}]"}) {  // [TOOL_CALLS] as a control token has no text
    ToolOutput mistral = ParseToolCalls(ToolCallFormat::kMistral, text);
    ASSERT_EQ(mistral.calls.size(), 2u) << text;
    EXPECT_EQ(mistral.calls[1].name, "b");
    EXPECT_EQ(mistral.calls[1].arguments, "{\"x\":[1,2]}");
  }
  EXPECT_TRUE(ParseToolCalls(ToolCallFormat::kMistral, "[1, 2]").calls.empty());
}

// Streams `pieces` through a streamer; returns what was shown and the final output.
std::pair<std::string, ToolOutput> Stream(ToolCallFormat format,
                                          const std::vector<std::string>& pieces) {
  ToolCallStreamer streamer(format);
  std::string shown;
  for (const std::string& p : pieces) shown += streamer.Push(p);
  ToolOutput rest = streamer.Finish();
  return {shown, rest};
}

TEST(ToolCallsTest, StreamingShowsContentAndHoldsBackCalls) {
  // Hermes: text before the call streams; a split marker is held until it is known.
  auto [shown, rest] =
      Stream(ToolCallFormat::kHermes, {"Sure", ". <tool", "_call>\n{\"name\": \"f\", ",
                                       "\"arguments\": "
                                       "{}}\n</tool_call>"});
  EXPECT_EQ(shown, "Sure. ");
  ASSERT_EQ(rest.calls.size(), 1u);
  EXPECT_EQ(rest.calls[0].name, "f");
  // A held-back "<tool" that turns out to be text is shown after all.
  auto [text, plain] = Stream(ToolCallFormat::kHermes, {"a <to", "ol> b", " <t"});
  EXPECT_EQ(text + plain.content, "a <tool> b <t");
  EXPECT_TRUE(plain.calls.empty());
  EXPECT_EQ(text, "a <tool> b ");
  // Llama 3: a leading '{' holds everything; other text streams at once.
  auto [none, call] =
      Stream(ToolCallFormat::kLlama3Json, {" {\"name\": \"f\",", " \"parameters\": {\"a\": 1}}"});
  EXPECT_EQ(none, "");
  ASSERT_EQ(call.calls.size(), 1u);
  auto [words, no_call] = Stream(ToolCallFormat::kLlama3Json, {"Hello", " there {"});
  EXPECT_EQ(words, "Hello there {");
  EXPECT_TRUE(no_call.calls.empty());
  // A call that does not parse comes back as content at the end.
  auto [held, broken] = Stream(ToolCallFormat::kMistral, {"[not", " a call"});
  EXPECT_EQ(held, "");
  EXPECT_EQ(broken.content, "[not a call");
}

bool Matches(const std::string& gbnf, const std::string& text) {
  absl::StatusOr<std::shared_ptr<const constrain::Grammar>> g = constrain::Grammar::Parse(gbnf);
  EXPECT_TRUE(g.ok()) << g.status() << "\n" << gbnf;
  if (!g.ok()) return false;
  constrain::GrammarMatcher m(*g);
  return m.AcceptBytes(text) && m.IsAccepting();
}

TEST(ToolCallsTest, GrammarForcesOneValidCall) {
  const std::vector<ToolFunction> tools = {
      {"get_weather",
       R"({"type":"object","properties":{"city":{"type":"string","maxLength":20}},"required":["city"]})"},
      {"noop", "{}"}};
  absl::StatusOr<std::string> hermes = ToolCallGrammar(ToolCallFormat::kHermes, tools, "");
  ASSERT_TRUE(hermes.ok()) << hermes.status();
  EXPECT_TRUE(Matches(*hermes,
                      "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}"
                      "\n</tool_call>"));
  EXPECT_TRUE(Matches(*hermes, "<tool_call>\n{\"name\":\"noop\",\"arguments\":{}}\n</tool_call>"));
  EXPECT_FALSE(Matches(*hermes,
                       "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{}}\n"
                       "</tool_call>"));  // city is required
  EXPECT_FALSE(Matches(*hermes,
                       "<tool_call>\n{\"name\":\"other\",\"arguments\":{}}\n"
                       "</tool_call>"));
  // Named: only that function.
  absl::StatusOr<std::string> named = ToolCallGrammar(ToolCallFormat::kLlama3Json, tools, "noop");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_TRUE(Matches(*named, "{\"name\":\"noop\",\"parameters\":{}}"));
  EXPECT_FALSE(Matches(*named, "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"x\"}}"));
  absl::StatusOr<std::string> mistral = ToolCallGrammar(ToolCallFormat::kMistral, tools, "");
  ASSERT_TRUE(mistral.ok()) << mistral.status();
  EXPECT_TRUE(Matches(*mistral, "[TOOL_CALLS][{\"name\":\"noop\",\"arguments\":{}}]"));
  EXPECT_TRUE(Matches(*mistral, "[{\"name\":\"noop\",\"arguments\":{}}]"));
  // Errors.
  EXPECT_FALSE(ToolCallGrammar(ToolCallFormat::kHermes, tools, "missing").ok());
  EXPECT_FALSE(ToolCallGrammar(ToolCallFormat::kHermes, {}, "").ok());
  absl::Status ref = ToolCallGrammar(ToolCallFormat::kHermes,
                                     {{"f", R"({"$ref":"#/$defs/x","$defs":{"x":{}}})"}}, "")
                         .status();
  EXPECT_NE(ref.message().find("$ref"), std::string::npos) << ref;
}

}  // namespace
}  // namespace kvserve::server
