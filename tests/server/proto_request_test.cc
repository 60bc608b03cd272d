#include "server/grpc/proto_request.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

using kvserve::v1::GenerateRequest;

const RequestLimits kLimits{/*context_length=*/100, /*kv_capacity_tokens=*/1000};

absl::Status Build(const GenerateRequest& r) {
  ByteLevelCodec codec;
  return BuildGenerationRequest(r, codec, kLimits).status();
}

GenerateRequest Valid() {
  GenerateRequest r;
  r.set_prompt("hi");
  return r;
}

void ExpectInvalid(const GenerateRequest& r, const std::string& field) {
  const absl::Status s = Build(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field << ": " << s;
  EXPECT_NE(s.message().find(field), absl::string_view::npos) << s.message();
}

TEST(RequestBuilderTest, TextPromptGetsBosAndDefaultsFillTheContext) {
  ByteLevelCodec codec;
  absl::StatusOr<BuiltRequest> b = BuildGenerationRequest(Valid(), codec, kLimits);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->engine.prompt, (std::vector<int32_t>{256, 'h', 'i'}));
  EXPECT_EQ(b->engine.stop.max_tokens, 100 - 3);  // the rest of the context
  EXPECT_TRUE(b->engine.stop.eos_token_ids.contains(257));
  EXPECT_TRUE(b->stream.stop_token_ids.contains(257));
  EXPECT_FLOAT_EQ(b->engine.sampling.temperature, 1.0f);
}

TEST(RequestBuilderTest, DefaultMaxTokensIsBoundedByTheKvCache) {
  ByteLevelCodec codec;
  absl::StatusOr<BuiltRequest> b = BuildGenerationRequest(Valid(), codec, RequestLimits{100, 48});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->engine.stop.max_tokens, 48 - 3);
}

TEST(RequestBuilderTest, IgnoreEosKeepsEosOutOfTheStopTokens) {
  ByteLevelCodec codec;
  GenerateRequest r = Valid();
  r.set_ignore_eos(true);
  r.add_stop_token_ids('x');
  absl::StatusOr<BuiltRequest> b = BuildGenerationRequest(r, codec, kLimits);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->stream.stop_token_ids.contains(257));
  EXPECT_TRUE(b->stream.stop_token_ids.contains('x'));
  EXPECT_TRUE(b->engine.stop.ignore_eos);
}

TEST(RequestBuilderTest, EachInvalidFieldIsNamed) {
  GenerateRequest r;
  ExpectInvalid(r, "input");
  r.set_prompt("");
  ExpectInvalid(r, "prompt");
  r = Valid();
  r.mutable_prompt_token_ids();  // switches the oneof to empty ids
  ExpectInvalid(r, "prompt_token_ids");
  r.mutable_prompt_token_ids()->add_ids(5);
  r.mutable_prompt_token_ids()->add_ids(258);
  ExpectInvalid(r, "prompt_token_ids[1]");

  auto with = [](auto edit) {
    GenerateRequest r = Valid();
    edit(r);
    return r;
  };
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_temperature(-0.5f); }),
                "sampling.temperature");
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_top_p(0.f); }), "sampling.top_p");
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_top_p(1.5f); }), "sampling.top_p");
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_top_k(-1); }), "sampling.top_k");
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_min_p(2.f); }), "sampling.min_p");
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_repetition_penalty(0.f); }),
                "sampling.repetition_penalty");
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_presence_penalty(3.f); }),
                "sampling.presence_penalty");
  ExpectInvalid(with([](auto& r) { r.mutable_sampling()->set_frequency_penalty(-3.f); }),
                "sampling.frequency_penalty");
  ExpectInvalid(with([](auto& r) { (*r.mutable_sampling()->mutable_logit_bias())[999] = 1; }),
                "sampling.logit_bias");
  ExpectInvalid(with([](auto& r) { (*r.mutable_sampling()->mutable_logit_bias())[5] = 101; }),
                "sampling.logit_bias");
  ExpectInvalid(with([](auto& r) { r.set_logprobs(21); }), "logprobs");
  ExpectInvalid(with([](auto& r) { r.set_logprobs(-1); }), "logprobs");
  ExpectInvalid(with([](auto& r) { r.set_max_tokens(0); }), "max_tokens");
  ExpectInvalid(with([](auto& r) { r.add_stop("ok"), r.add_stop(""); }), "stop[1]");
  ExpectInvalid(with([](auto& r) { r.add_stop_token_ids(-1); }), "stop_token_ids[0]");
}

TEST(RequestBuilderTest, PromptPlusMaxTokensBeyondTheContextIsOutOfRange) {
  GenerateRequest r = Valid();  // 3 tokens with BOS
  r.set_max_tokens(97);
  EXPECT_TRUE(Build(r).ok());
  r.set_max_tokens(98);
  EXPECT_EQ(Build(r).code(), absl::StatusCode::kOutOfRange);
  r.set_prompt(std::string(100, 'a'));
  r.clear_max_tokens();
  EXPECT_EQ(Build(r).code(), absl::StatusCode::kOutOfRange);
}

// The one validation point, as both transports call it: the same rule, each wire's field names.
TEST(RequestBuilderTest, APromptTooLongForAnyContextIsRefusedBeforeTokenizing) {
  // The demo vocabulary: one byte per token, so 101 bytes cannot fit a 100-token context.
  GenerateRequest r;
  r.set_prompt(std::string(101, 'a'));
  const absl::Status s = Build(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_NE(s.message().find("(101 bytes) cannot fit the 100 tokens"), absl::string_view::npos)
      << s.message();
  r.set_prompt(std::string(98, 'a'));  // 98 bytes + BOS: fits, with one token to generate
  EXPECT_TRUE(Build(r).ok()) << Build(r);
}

TEST(ValidationPointTest, OneRuleEachWiresFieldNames) {
  ByteLevelCodec codec;
  GenerationParams p;
  p.prompt = "hi";
  p.top_p = 0;
  WireRules openai;
  openai.max_temperature = 2;
  const absl::Status grpc_error =
      BuildGenerationRequest(p, codec, kLimits, GrpcWireRules()).status();
  const absl::Status http_error = BuildGenerationRequest(p, codec, kLimits, openai).status();
  EXPECT_EQ(grpc_error.message(), "sampling.top_p = 0 is out of range: must be in (0, 1]");
  EXPECT_EQ(ErrorParam(grpc_error), "sampling.top_p");
  EXPECT_EQ(http_error.message(), "top_p = 0 is out of range: must be in (0, 1]");
  EXPECT_EQ(ErrorParam(http_error), "top_p");

  p.top_p.reset();
  p.temperature = 2.5;  // beyond OpenAI's range only
  EXPECT_TRUE(BuildGenerationRequest(p, codec, kLimits, GrpcWireRules()).ok());
  EXPECT_EQ(CheckGenerationParams(p, openai).message(),
            "temperature = 2.5 is out of range: must be in [0, 2]");

  p.temperature.reset();
  p.max_tokens = 98;  // 3 prompt tokens + 98 > the context of 100
  EXPECT_EQ(BuildGenerationRequest(p, codec, kLimits, openai).status().code(),
            absl::StatusCode::kOutOfRange);
}

// HTTP's max_tokens is 64-bit: reported as sent (never narrowed to int32 or wrapped by the sum
// with the prompt), with the field the client used.
TEST(ValidationPointTest, MaxTokensBeyondTheContextIsReportedAsSent) {
  ByteLevelCodec codec;
  GenerationParams p;
  p.prompt = "hi";  // 3 tokens with BOS
  WireRules chat;
  chat.prompt = "messages";
  chat.max_tokens = "max_completion_tokens";
  for (const int64_t max_tokens : {int64_t{98}, int64_t{2147483648}, INT64_MAX}) {
    p.max_tokens = max_tokens;
    const absl::Status s = BuildGenerationRequest(p, codec, kLimits, chat).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
    EXPECT_EQ(s.message(), absl::StrCat("messages (3 tokens) + max_completion_tokens (", max_tokens,
                                        ") exceeds the 100 tokens a sequence may hold (context "
                                        "100, KV cache 1000)"));
    EXPECT_EQ(ErrorParam(s), "max_completion_tokens");
  }
  p.max_tokens.reset();
  p.prompt = std::string(99, 'a');  // 100 tokens with BOS: no room left
  const absl::Status s = BuildGenerationRequest(p, codec, kLimits, chat).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_EQ(ErrorParam(s), "messages");
  p.prompt = std::string(101, 'a');  // more bytes than any 100 tokens: refused before tokenizing
  EXPECT_EQ(ErrorParam(BuildGenerationRequest(p, codec, kLimits, chat).status()), "messages");
}

// HTTP's integers are 64-bit: a top_k beyond the vocabulary keeps every token (0, off) and never
// wraps into a small one.
TEST(ValidationPointTest, TopKBeyondTheVocabularyIsOff) {
  ByteLevelCodec codec;
  GenerationParams p;
  p.prompt = "hi";
  for (const int64_t top_k : {int64_t{258}, int64_t{1} << 32 | 1, int64_t{1} << 40}) {
    p.top_k = top_k;
    absl::StatusOr<BuiltRequest> b = BuildGenerationRequest(p, codec, kLimits, GrpcWireRules());
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->engine.sampling.top_k, 0) << top_k;
  }
  p.top_k = 257;  // below the vocabulary of 258: kept
  EXPECT_EQ(BuildGenerationRequest(p, codec, kLimits, GrpcWireRules())->engine.sampling.top_k, 257);
}

}  // namespace
}  // namespace kvserve::server
