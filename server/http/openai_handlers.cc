#include "server/http/openai_handlers.h"

#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/frontend/auth.h"
#include "server/frontend/generation_stream.h"
#include "server/frontend/request_builder.h"

namespace kvserve::server {
namespace {

using openai::Endpoint;

constexpr std::string_view kJson = "application/json";
// How long a stream waits for output before writing a keep-alive comment (which is also how a
// client that left while its request waited is noticed).
constexpr absl::Duration kKeepAlive = absl::Seconds(1);

void SendError(HttpResponseWriter& writer, const absl::Status& status) {
  const openai::ApiError error = openai::ErrorFromStatus(status);
  writer.Send(error.http_status, kJson, error.body);
}

// "cmpl-" / "chatcmpl-" and 24 random hex digits.
std::string NewResponseId(Endpoint endpoint) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char hex[25];
  std::snprintf(hex, sizeof(hex), "%012llx%012llx",
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL),
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return absl::StrCat(endpoint == Endpoint::kCompletions ? "cmpl-" : "chatcmpl-", hex);
}

std::vector<openai::LogprobEntry> LogprobEntries(const TextCodec& codec,
                                                 const std::vector<TokenLogprobs>& tokens) {
  std::vector<openai::LogprobEntry> entries;
  entries.reserve(tokens.size());
  for (const TokenLogprobs& t : tokens) {
    openai::LogprobEntry& e = entries.emplace_back();
    e.token = codec.TokenPiece(t.token_id);
    e.logprob = t.logprob;
    for (const auto& [id, logprob] : t.top) e.top.emplace_back(codec.TokenPiece(id), logprob);
  }
  return entries;
}

struct PreparedGeneration {
  openai::ParsedRequest parsed;
  std::unique_ptr<GenerationStream> stream;
};

// Writes the request's output as server-sent events until it finishes or the client leaves.
void StreamEvents(const openai::ParsedRequest& parsed, const openai::ResponseMeta& meta,
                  const TextCodec& codec, GenerationStream& stream, HttpResponseWriter& writer) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  if (!writer.StartStream(200, "text/event-stream")) {
    stream.AbortEngine();
    return;
  }
  auto send = [&](const std::string& json) { return writer.Write(openai::SseEvent(json)); };
  if (chat) {
    openai::ChunkContent role;
    role.role = true;
    role.has_text = true;
    if (!send(openai::ChunkBody(meta, role, parsed.include_usage))) {
      stream.AbortEngine();
      return;
    }
  }
  int64_t text_offset = 0;
  while (true) {
    StreamEvent event;
    absl::StatusOr<bool> got = stream.WaitAndDrain(&event, absl::Now() + kKeepAlive);
    if (!got.ok()) {
      // Headers are gone: the error travels as an event, as OpenAI's streams report them.
      writer.Write(openai::SseEvent(openai::ErrorFromStatus(got.status()).body));
      writer.Write(openai::kSseDone);
      return;
    }
    if (!*got) {
      if (!writer.Write(": keep-alive\n\n")) {
        stream.AbortEngine();
        return;
      }
      continue;
    }
    if (event.abort_engine) stream.AbortEngine(scheduler::FinishReason::kStopString);
    const bool with_logprobs = parsed.logprobs && !event.logprobs.empty();
    if (!event.text.empty() || with_logprobs) {
      openai::ChunkContent chunk;
      chunk.has_text = true;
      chunk.text = std::move(event.text);
      chunk.with_logprobs = with_logprobs;
      if (with_logprobs) chunk.logprobs = LogprobEntries(codec, event.logprobs);
      chunk.text_offset = text_offset;
      for (const openai::LogprobEntry& e : chunk.logprobs) {
        text_offset += static_cast<int64_t>(e.token.size());
      }
      if (!send(openai::ChunkBody(meta, chunk, parsed.include_usage))) {
        stream.AbortEngine();
        return;
      }
    }
    if (event.finished) {
      openai::ChunkContent last;
      last.finish_reason = &event.finish_reason;
      if (!send(openai::ChunkBody(meta, last, parsed.include_usage))) return;
      if (parsed.include_usage &&
          !send(openai::UsageChunkBody(meta, {event.prompt_tokens, event.completion_tokens}))) {
        return;
      }
      writer.Write(openai::kSseDone);
      return;
    }
  }
}

// Collects the whole output and sends one JSON body.
void SendWhole(const openai::ParsedRequest& parsed, const openai::ResponseMeta& meta,
               const TextCodec& codec, GenerationStream& stream, HttpResponseWriter& writer) {
  std::string text;
  std::vector<TokenLogprobs> logprobs;
  while (true) {
    StreamEvent event;
    absl::StatusOr<bool> got = stream.WaitAndDrain(&event, absl::InfiniteFuture());
    if (!got.ok()) {
      SendError(writer, got.status());
      return;
    }
    if (event.abort_engine) stream.AbortEngine(scheduler::FinishReason::kStopString);
    text += event.text;
    if (parsed.logprobs) {
      for (TokenLogprobs& t : event.logprobs) logprobs.push_back(std::move(t));
    }
    if (event.finished) {
      writer.Send(200, kJson,
                  openai::ResponseBody(meta, text, event.finish_reason, parsed.logprobs,
                                       LogprobEntries(codec, logprobs),
                                       {event.prompt_tokens, event.completion_tokens}));
      return;
    }
  }
}

// The request body parsed and checked, the chat rendered, the prompt tokenized and submitted.
absl::StatusOr<PreparedGeneration> Prepare(Endpoint endpoint, const std::string& body,
                                           const ServingBackend& backend) {
  absl::StatusOr<openai::ParsedRequest> parsed = endpoint == Endpoint::kCompletions
                                                     ? openai::ParseCompletionRequest(body)
                                                     : openai::ParseChatRequest(body);
  if (!parsed.ok()) return parsed.status();
  const std::string& model_id = backend.model_info.name;
  if (!parsed->model.empty() && parsed->model != model_id) {
    return absl::NotFoundError(absl::StrCat(
        "The model '", parsed->model, "' does not exist: this server serves '", model_id, "'"));
  }
  if (endpoint == Endpoint::kChatCompletions) {
    absl::StatusOr<std::string> prompt =
        backend.RenderChat(std::move(parsed->messages), /*add_generation_prompt=*/true);
    if (!prompt.ok()) return prompt.status();
    parsed->params.prompt = *std::move(prompt);
    // The template writes the special tokens (BOS) itself, as transformers does.
    parsed->params.add_special_tokens = false;
  }
  absl::StatusOr<BuiltRequest> built =
      BuildGenerationRequest(parsed->params, *backend.codec, backend.limits, parsed->wire);
  if (!built.ok()) return built.status();
  absl::StatusOr<std::unique_ptr<GenerationStream>> stream =
      GenerationStream::Submit(backend.loop.get(), backend.codec.get(), *std::move(built));
  if (!stream.ok()) return stream.status();
  return PreparedGeneration{*std::move(parsed), *std::move(stream)};
}

}  // namespace

OpenAiFrontend::OpenAiFrontend(std::string api_key)
    : api_key_(std::move(api_key)),
      created_(absl::ToUnixSeconds(absl::Now())),
      workers_(kPrepareThreads) {}

void OpenAiFrontend::SetBackend(std::shared_ptr<ServingBackend> backend) {
  backend_.Set(std::move(backend));
}

absl::StatusOr<std::shared_ptr<ServingBackend>> OpenAiFrontend::backend() const {
  return backend_.Get();
}

bool OpenAiFrontend::Authorized(const HttpRequest& request) const {
  return api_key_.empty() || BearerTokenMatches(request.header("authorization"), api_key_);
}

void OpenAiFrontend::Register(HttpServer& server) {
  server.Handle("GET", "/", [](const HttpRequest&, HttpResponseWriter& writer) {
    writer.Send(200, "text/html; charset=utf-8", kChatPageHtml);
  });
  server.Handle("GET", "/v1/models", [this](const HttpRequest& request, HttpResponseWriter& w) {
    HandleModels(request, w);
  });
  server.Handle("POST", "/v1/completions",
                [this](const HttpRequest& request, HttpResponseWriter& w) {
                  HandleGeneration(Endpoint::kCompletions, request, w);
                });
  server.Handle("POST", "/v1/chat/completions",
                [this](const HttpRequest& request, HttpResponseWriter& w) {
                  HandleGeneration(Endpoint::kChatCompletions, request, w);
                });
}

void OpenAiFrontend::HandleModels(const HttpRequest& request, HttpResponseWriter& writer) {
  if (!Authorized(request)) {
    SendError(writer, absl::UnauthenticatedError("missing or wrong API key: send "
                                                 "'Authorization: Bearer KEY'"));
    return;
  }
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = this->backend();
  if (!backend.ok()) {
    SendError(writer, backend.status());
    return;
  }
  writer.Send(200, kJson, openai::ModelsBody((*backend)->model_info.name, created_));
}

void OpenAiFrontend::HandleGeneration(Endpoint endpoint, const HttpRequest& request,
                                      HttpResponseWriter& writer) {
  if (!Authorized(request)) {
    SendError(writer, absl::UnauthenticatedError("missing or wrong API key: send "
                                                 "'Authorization: Bearer KEY'"));
    return;
  }
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend_or = this->backend();
  if (!backend_or.ok()) {
    SendError(writer, backend_or.status());
    return;
  }
  const ServingBackend& backend = **backend_or;
  // Parsing, rendering and tokenizing walk untrusted input: on the pool's full-size stacks, not
  // this HTTP worker's small one.
  absl::StatusOr<PreparedGeneration> prepared;
  workers_.Run([&] { prepared = Prepare(endpoint, request.body, backend); });
  if (!prepared.ok()) {
    SendError(writer, prepared.status());
    return;
  }
  std::unique_ptr<GenerationStream>& stream = prepared->stream;
  const openai::ParsedRequest* parsed = &prepared->parsed;
  const std::string& model_id = backend.model_info.name;
  openai::ResponseMeta meta;
  meta.endpoint = endpoint;
  meta.id = NewResponseId(endpoint);
  meta.created = absl::ToUnixSeconds(absl::Now());
  meta.model = model_id;
  if (parsed->stream) {
    StreamEvents(*parsed, meta, *backend.codec, *stream, writer);
  } else {
    SendWhole(*parsed, meta, *backend.codec, *stream, writer);
  }
}

}  // namespace kvserve::server
