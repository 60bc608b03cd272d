// The OpenAI wire format: request parsing into GenerateRequest fields, and response bodies,
// chunks and errors compared with hand-written JSON.
#include "server/http/openai_api.h"

#include <string>

#include "gtest/gtest.h"
#include "server/http/json_writer.h"

namespace kvserve::server::openai {
namespace {

TEST(JsonWriterTest, PlacesCommasAndEscapes) {
  JsonWriter w;
  w.BeginObject().Key("a").Int(1).Key("b").BeginArray().String("x").Bool(true).Null().EndArray();
  w.Key("c").BeginObject().EndObject().Key("q\"").String("line\n\ttab\\ \x01").EndObject();
  EXPECT_EQ(w.text(), R"({"a":1,"b":["x",true,null],"c":{},"q\"":"line\n\ttab\\ \u0001"})");
}

TEST(JsonWriterTest, InvalidUtf8BecomesReplacementCharacters) {
  // "é" kept; a lone continuation byte and a truncated 3-byte sequence become U+FFFD.
  EXPECT_EQ(JsonQuote("\xc3\xa9|\x80|\xe2\x82"), "\"\xc3\xa9|\xef\xbf\xbd|\xef\xbf\xbd\"");
}

TEST(JsonWriterTest, DoublesAreShortAndRoundTrip) {
  JsonWriter w;
  w.BeginArray().Double(0.5).Double(-1.25).Double(0.1).Double(1.0 / 0.0).Double(3).EndArray();
  EXPECT_EQ(w.text(), "[0.5,-1.25,0.1,null,3]");
  JsonWriter f;
  f.Double(static_cast<double>(-0.3f));  // a float widened: needs more digits to read back
  EXPECT_EQ(std::stod(f.text()), static_cast<double>(-0.3f));
}

TEST(ParseCompletionTest, ReadsEveryField) {
  absl::StatusOr<ParsedRequest> r = ParseCompletionRequest(R"({
    "model": "m", "prompt": "Hello", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
    "seed": 42, "stop": ["a", "bc"], "logprobs": 2, "stream": true,
    "stream_options": {"include_usage": true}, "n": 1, "echo": false, "user": "u",
    "presence_penalty": 0.5, "frequency_penalty": -0.5, "ignore_eos": true, "top_k": 40,
    "min_p": 0.05, "repetition_penalty": 1.1})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->endpoint, Endpoint::kCompletions);
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(*r->params.prompt, "Hello");
  EXPECT_EQ(*r->params.max_tokens, 7);
  EXPECT_FLOAT_EQ(*r->params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*r->params.top_p, 0.9f);
  EXPECT_EQ(*r->params.seed, 42u);
  EXPECT_FLOAT_EQ(*r->params.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(*r->params.frequency_penalty, -0.5f);
  EXPECT_EQ(*r->params.top_k, 40);
  EXPECT_FLOAT_EQ(*r->params.min_p, 0.05f);
  EXPECT_FLOAT_EQ(*r->params.repetition_penalty, 1.1f);
  ASSERT_EQ(r->params.stop.size(), 2u);
  EXPECT_EQ(r->params.stop[1], "bc");
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 2);
  EXPECT_EQ(*r->params.logprobs, 2);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->params.ignore_eos);
}

TEST(ParseCompletionTest, DefaultsAndTokenPrompts) {
  absl::StatusOr<ParsedRequest> r = ParseCompletionRequest(R"({"prompt": [1, 2, 3], "stop": "x"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r->params.max_tokens, 16);  // OpenAI's default for completions
  EXPECT_FALSE(r->params.temperature.has_value());
  ASSERT_EQ(r->params.prompt_token_ids->size(), 3u);
  EXPECT_EQ((*r->params.prompt_token_ids)[2], 3);
  ASSERT_EQ(r->params.stop.size(), 1u);
  EXPECT_EQ(r->params.stop[0], "x");
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->logprobs);

  r = ParseCompletionRequest(R"({"prompt": [[5, 6]]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->params.prompt_token_ids->size(), 2u);
  r = ParseCompletionRequest(R"({"prompt": ["only"], "temperature": null})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r->params.prompt, "only");
  EXPECT_FALSE(r->params.temperature.has_value());
  // include_usage only applies to streams.
  r = ParseCompletionRequest(R"({"prompt": "p", "stream_options": {"include_usage": true}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->include_usage);
}

// The "param" a rejected body is blamed on, read back from the error JSON.
std::string ErrorOf(const absl::StatusOr<ParsedRequest>& r) {
  if (r.ok()) return "accepted";
  return ErrorFromStatus(r.status()).body;
}

TEST(ParseCompletionTest, RejectsWhatIsNotSupportedOrInvalid) {
  struct Case {
    const char* body;
    const char* param;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"prompt": "p", "n": 17})", "\"param\":\"n\""},
           {R"({"prompt": "p", "n": 0})", "\"param\":\"n\""},
           {R"({"prompt": "p", "echo": true, "logprobs": 2})", "\"param\":\"echo\""},
           {R"({"prompt": "p", "temperature": -1})", "\"param\":\"temperature\""},
           {R"({"prompt": "p", "temperature": 2.5})", "\"param\":\"temperature\""},
           {R"({"prompt": "p", "temperature": "hot"})", "\"param\":\"temperature\""},
           {R"({"prompt": "p", "top_p": 0})", "\"param\":\"top_p\""},
           {R"({"prompt": "p", "top_k": -1})", "\"param\":\"top_k\""},
           {R"({"prompt": "p", "top_k": 2.5})", "\"param\":\"top_k\""},
           {R"({"prompt": "p", "min_p": 1.5})", "\"param\":\"min_p\""},
           {R"({"prompt": "p", "repetition_penalty": 0})", "\"param\":\"repetition_penalty\""},
           {R"({"prompt": "p", "presence_penalty": 3})", "\"param\":\"presence_penalty\""},
           {R"({"prompt": "p", "max_tokens": 0})", "\"param\":\"max_tokens\""},
           {R"({"prompt": "p", "max_tokens": 1.5})", "\"param\":\"max_tokens\""},
           {R"({"prompt": "p", "max_tokens": 9223372036854775808})", "\"param\":\"max_tokens\""},
           {R"({"prompt": "p", "logprobs": 21})", "\"param\":\"logprobs\""},
           {R"({"prompt": "p", "stop": 3})", "\"param\":\"stop\""},
           // Found by tests/fuzz/openai_body_fuzzer: a JSON string holding invalid UTF-8.
           {"{\"prompt\": \"p\", \"stop\": [\"a\", \"\xc5ND\"]}", "\"param\":\"stop\""},
           {"{\"prompt\": \"ab\xff\"}", "\"param\":\"prompt\""},  // invalid UTF-8 prompt
           {R"({"prompt": "p", "stream": "yes"})", "\"param\":\"stream\""},
           {R"({"prompt": ["a", "b"]})", "\"param\":\"prompt\""},
           {R"({"prompt": [1, -2]})", "\"param\":\"prompt\""},
           {R"({"max_tokens": 3})", "\"param\":\"prompt\""},
           {R"({"prompt": "p", "model": 7})", "\"param\":\"model\""},
           {R"({"prompt": "p",)", "\"param\":null"},
           {R"([1])", "\"param\":null"},
       }) {
    const std::string error = ErrorOf(ParseCompletionRequest(c.body));
    EXPECT_NE(error.find(c.param), std::string::npos) << c.body << " -> " << error;
    EXPECT_NE(error.find("\"type\":\"invalid_request_error\""), std::string::npos) << error;
    EXPECT_EQ(ErrorFromStatus(ParseCompletionRequest(c.body).status()).http_status, 400);
  }
}

TEST(ParseChatTest, ReadsMessagesAndChatFields) {
  absl::StatusOr<ParsedRequest> r = ParseChatRequest(R"({
    "model": "m",
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                              {"type": "text", "text": "there"}]},
                 {"role": "assistant", "content": null}],
    "max_tokens": 5, "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 3,
    "stop": "END"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->endpoint, Endpoint::kChatCompletions);
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[0].content, "Be brief.");
  EXPECT_EQ(r->messages[1].content, "Hi\nthere");
  EXPECT_EQ(r->messages[2].role, "assistant");
  EXPECT_EQ(r->messages[2].content, "");
  EXPECT_EQ(*r->params.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 3);
  EXPECT_EQ(*r->params.logprobs, 3);
  EXPECT_FALSE(r->params.prompt.has_value() || r->params.prompt_token_ids.has_value());

  r = ParseChatRequest(R"({"messages": [{"role": "user", "content": "x"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->params.max_tokens.has_value());  // chat: up to the context
  EXPECT_FALSE(r->logprobs);
}

TEST(ParseChatTest, RejectsBadMessagesAndLogprobs) {
  for (const char* body : {
           R"({"messages": []})",
           R"({"messages": "hi"})",
           R"({})",
           R"({"messages": [{"content": "no role"}]})",
           R"({"messages": [{"role": "user", "content": 5}]})",
           R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       }) {
    EXPECT_NE(ErrorOf(ParseChatRequest(body)).find("\"param\":\"messages\""), std::string::npos)
        << body;
  }
  EXPECT_NE(ErrorOf(ParseChatRequest(
                        R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})"))
                .find("\"param\":\"top_logprobs\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(ParseChatRequest(R"({"messages": [{"role": "user", "content": "x"}],
                                         "n": 30})"))
                .find("\"param\":\"n\""),
            std::string::npos);
}

TEST(ErrorFromStatusTest, ExactBodyAndStatusCodes) {
  ApiError e = ErrorFromStatus(InvalidParam("temperature", "temperature = -1 is out of range"));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.body, R"({"error":{"message":"temperature = -1 is out of range","type":)"
                    R"("invalid_request_error","param":"temperature","code":null}})");
  e = ErrorFromStatus(absl::UnauthenticatedError("bad key"));
  EXPECT_EQ(e.http_status, 401);
  EXPECT_EQ(e.body, R"({"error":{"message":"bad key","type":"invalid_request_error","param":null,)"
                    R"("code":"invalid_api_key"}})");
  EXPECT_EQ(ErrorFromStatus(absl::NotFoundError("no such model")).http_status, 404);
  // Too long for the context: 400 as OpenAI and vLLM answer it, with OpenAI's code.
  e = ErrorFromStatus(absl::OutOfRangeError("too long"));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.body, R"({"error":{"message":"too long","type":"invalid_request_error","param":null,)"
                    R"("code":"context_length_exceeded"}})");
  EXPECT_EQ(ErrorFromStatus(absl::ResourceExhaustedError("queue full")).http_status, 429);
  EXPECT_EQ(ErrorFromStatus(absl::UnavailableError("draining")).http_status, 503);
  EXPECT_EQ(ErrorFromStatus(absl::InternalError("boom")).http_status, 500);
}

ResponseMeta Meta(Endpoint endpoint) {
  ResponseMeta meta;
  meta.endpoint = endpoint;
  meta.id = endpoint == Endpoint::kCompletions ? "cmpl-1" : "chatcmpl-1";
  meta.created = 1700000000;
  meta.model = "demo";
  return meta;
}

TEST(ResponseBodyTest, Completion) {
  EXPECT_EQ(ResponseBody(Meta(Endpoint::kCompletions), "Hi \"you\"",
                         scheduler::FinishReason::kLength, false, {}, Usage{3, 4}),
            R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"demo",)"
            R"("choices":[{"index":0,"text":"Hi \"you\"","logprobs":null,"finish_reason":)"
            R"("length"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})");
}

TEST(ResponseBodyTest, CompletionWithLogprobs) {
  std::vector<LogprobEntry> lp = {{"a", -0.5f, {{"a", -0.5f}, {"b", -1.5f}}},
                                  {"bc", -1.0f / 0.0f, {{"x", -0.25f}, {"x", -3.0f}}}};
  EXPECT_EQ(ResponseBody(Meta(Endpoint::kCompletions), "abc", scheduler::FinishReason::kStopString,
                         true, lp, Usage{1, 2}),
            R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"demo",)"
            R"("choices":[{"index":0,"text":"abc","logprobs":{"tokens":["a","bc"],)"
            R"("token_logprobs":[-0.5,-9999],"top_logprobs":[{"a":-0.5,"b":-1.5},{"x":-0.25}],)"
            R"("text_offset":[0,1]},"finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})");
}

TEST(ResponseBodyTest, ChatWithLogprobs) {
  std::vector<LogprobEntry> lp = {{"\xc3\xa9", -0.5f, {{"\xc3\xa9", -0.5f}}}};
  EXPECT_EQ(ResponseBody(Meta(Endpoint::kChatCompletions), "\xc3\xa9",
                         scheduler::FinishReason::kStop, true, lp, Usage{5, 1}),
            "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,"
            "\"model\":\"demo\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"\xc3\xa9\"},\"logprobs\":{\"content\":[{\"token\":\"\xc3\xa9\","
            "\"logprob\":-0.5,\"bytes\":[195,169],\"top_logprobs\":[{\"token\":\"\xc3\xa9\","
            "\"logprob\":-0.5,\"bytes\":[195,169]}]}],\"refusal\":null},\"finish_reason\":"
            "\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,"
            "\"total_tokens\":6}}");
}

TEST(ChunkBodyTest, ChatChunksAndUsage) {
  const ResponseMeta meta = Meta(Endpoint::kChatCompletions);
  ChunkContent first;
  first.role = true;
  first.has_text = true;
  EXPECT_EQ(ChunkBody(meta, first, false),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
            R"("model":"demo","choices":[{"index":0,"delta":{"role":"assistant","content":""},)"
            R"("logprobs":null,"finish_reason":null}]})");
  ChunkContent last;
  const scheduler::FinishReason length = scheduler::FinishReason::kContextLength;
  last.finish_reason = &length;
  EXPECT_EQ(ChunkBody(meta, last, true),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
            R"("model":"demo","choices":[{"index":0,"delta":{},"logprobs":null,)"
            R"("finish_reason":"length"}],"usage":null})");
  EXPECT_EQ(UsageChunkBody(meta, Usage{2, 3}),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
            R"("model":"demo","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,)"
            R"("total_tokens":5}})");
}

TEST(ChunkBodyTest, CompletionChunkWithOffsets) {
  ChunkContent c;
  c.has_text = true;
  c.text = "xy";
  c.with_logprobs = true;
  c.logprobs = {{"x", -1, {}}, {"y", -2, {}}};
  c.text_offset = 10;
  EXPECT_EQ(ChunkBody(Meta(Endpoint::kCompletions), c, false),
            R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"demo",)"
            R"("choices":[{"index":0,"text":"xy","logprobs":{"tokens":["x","y"],)"
            R"("token_logprobs":[-1,-2],"top_logprobs":[{},{}],"text_offset":[10,11]},)"
            R"("finish_reason":null}]})");
}

TEST(ModelsTest, ListsTheModel) {
  EXPECT_EQ(ModelsBody("demo", 5),
            R"({"object":"list","data":[{"id":"demo","object":"model","created":5,)"
            R"("owned_by":"kvserve"}]})");
}

TEST(SseTest, EventFraming) {
  EXPECT_EQ(SseEvent("{}"), "data: {}\n\n");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
}

}  // namespace
}  // namespace kvserve::server::openai
