// The OpenAI-compatible API's wire format, independent of the HTTP server: request bodies of
// POST /v1/completions and POST /v1/chat/completions parsed into GenerationParams (the one
// validation point, server/frontend/request_builder.h, checks them with OpenAI's field names),
// and response bodies, stream chunks and errors written exactly as OpenAI shapes them.
//
// Supported request fields — completions: model, prompt (string, or an array of token ids, or a
// one-element array of either), max_tokens, logprobs (int), echo (the prompt before each choice's
// text; not with logprobs, which would need prompt logprobs). Chat: model, messages (content a
// string or a list of {"type":"text","text"} parts), max_tokens / max_completion_tokens, logprobs
// (bool) with top_logprobs. Both: stop (string or list), stream, stream_options.include_usage, n (1
// to 16), user (ignored), structured output (response_format, guided_json / guided_regex /
// guided_choice / guided_grammar), and every sampling field of the gRPC API by its name there —
// temperature, top_p, seed, presence_penalty, frequency_penalty, logit_bias and, as extensions
// (vLLM's names), top_k, min_p, repetition_penalty — plus `ignore_eos` (vLLM's). Other fields are
// ignored.
//
// Errors: parse errors are InvalidArgument statuses whose payload names the offending field
// (InvalidParam; ErrorFromStatus reads it into "param"); the parse functions also run the
// model-independent checks (CheckGenerationParams), so a bad range is refused before a chat
// template renders. ErrorFromStatus maps every status to the HTTP status of the API (400, 401,
// 404, 429, 503, 500).
//
// Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_HTTP_OPENAI_API_H_
#define KVSERVE_SERVER_HTTP_OPENAI_API_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/json.h"
#include "server/frontend/generation_stream.h"
#include "server/frontend/request_builder.h"
#include "server/frontend/tool_calls.h"
#include "server/models/chat_template.h"

namespace kvserve::server::openai {

enum class Endpoint { kCompletions, kChatCompletions };

// OpenAI's field names ("prompt" for token ids too) and its temperature range [0, 2].
const WireRules& OpenAiWireRules();

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // as sent; "" when absent
  // Prompt (completions only), max_tokens, sampling, stop, logprobs. For chat the caller renders
  // `messages` with the model's template into `params.prompt`.
  GenerationParams params;
  // OpenAI's field names; max_tokens / logprobs say which key the value came from.
  WireRules wire = OpenAiWireRules();
  std::vector<ChatMessage> messages;  // chat only
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int32_t n = 1;               // choices: 1 to kMaxChoices samples of the same prompt
  bool echo = false;           // completions: each choice's text starts with the prompt
  // Chat with tools: the request's `tools` for the template, the functions offered, and what
  // tool_choice asks (kAuto: calls are read from the output; kRequired / kNamed: a call is
  // forced by a grammar; kNone: text only).
  enum class ToolChoice { kAuto, kNone, kRequired, kNamed };
  std::optional<base::JsonValue> tools;
  std::vector<ToolFunction> functions;
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_choice_name;
  bool logprobs = false;     // report logprobs (completions: "logprobs" present; chat: true)
  int32_t top_logprobs = 0;  // alternatives per token
};

inline constexpr int32_t kMaxChoices = 16;

absl::StatusOr<ParsedRequest> ParseCompletionRequest(absl::string_view body);
absl::StatusOr<ParsedRequest> ParseChatRequest(absl::string_view body);

struct ApiError {
  int http_status = 500;
  std::string body;  // {"error":{"message","type","param","code"}}
};
// 400 InvalidArgument/FailedPrecondition/AlreadyExists, and OutOfRange (the request does not fit
// the context) with code "context_length_exceeded" as OpenAI and vLLM answer it; 401
// Unauthenticated, 404 NotFound, 429 ResourceExhausted (queue full), 503 Unavailable (loading,
// draining), 500 anything else. "param" is the field the status names (ErrorParam), or null.
ApiError ErrorFromStatus(const absl::Status& status);

// What a response says about the request, besides its output.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// One generated token's logprobs, with token texts as raw bytes (the codec's pieces).
struct LogprobEntry {
  std::string token;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
};

// The one mapping of finish reasons to OpenAI's: "length" (max_tokens or the context filled) or
// "stop" (everything else; the aborts, which a finished response does not have, included).
absl::string_view OpenAiFinishReason(scheduler::FinishReason reason);

// One choice of a non-streamed response.
struct ChoiceBody {
  std::string text;
  scheduler::FinishReason finish_reason = scheduler::FinishReason::kStop;
  std::vector<LogprobEntry> logprobs;
  // Chat: calls read from the output; then message.content is null when `text` is empty, and
  // the finish reason "tool_calls".
  std::vector<ToolCall> tool_calls;
};
// A whole non-streamed response with choices 0..n-1. `logprobs` is null in the body when
// `with_logprobs` is false.
std::string ResponseBody(const ResponseMeta& meta, const std::vector<ChoiceBody>& choices,
                         bool with_logprobs, const Usage& usage);
// The same with one choice.
std::string ResponseBody(const ResponseMeta& meta, absl::string_view text,
                         scheduler::FinishReason finish_reason, bool with_logprobs,
                         const std::vector<LogprobEntry>& logprobs, const Usage& usage);

// One streamed chunk. `finish_reason` null while streaming; chat chunks carry a `delta` with the
// role (first chunk) and/or content. `text_offset` (completions logprobs) is the byte offset of
// the chunk's first token in the whole output. With `include_usage` every chunk has "usage":null.
struct ChunkContent {
  int32_t index = 0;      // the choice (n > 1)
  bool role = false;      // chat: delta.role = "assistant"
  bool has_text = false;  // completions always write text; chat writes content if set
  std::string text;
  const scheduler::FinishReason* finish_reason = nullptr;
  bool with_logprobs = false;
  std::vector<LogprobEntry> logprobs;
  int64_t text_offset = 0;
  // Chat: calls in delta.tool_calls, numbered from 0; finish_reason "tool_calls" with
  // `tool_calls_finish`.
  std::vector<ToolCall> tool_calls;
  bool tool_calls_finish = false;
};
std::string ChunkBody(const ResponseMeta& meta, const ChunkContent& content, bool include_usage);
// The last chunk of a stream with stream_options.include_usage: empty choices, the usage.
std::string UsageChunkBody(const ResponseMeta& meta, const Usage& usage);

// GET /v1/models.
std::string ModelsBody(absl::string_view model_id, int64_t created);

// "data: <json>\n\n" and the stream's end, "data: [DONE]\n\n".
std::string SseEvent(absl::string_view json);
inline constexpr char kSseDone[] = "data: [DONE]\n\n";

}  // namespace kvserve::server::openai

#endif  // KVSERVE_SERVER_HTTP_OPENAI_API_H_
