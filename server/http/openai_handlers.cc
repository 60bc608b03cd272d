#include "server/http/openai_handlers.h"

#include <atomic>
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

void SendError(HttpExchange& exchange, const absl::Status& status) {
  const openai::ApiError error = openai::ErrorFromStatus(status);
  HttpHeaders headers;
  // A full queue (429) and a loading or draining server (503) are worth retrying.
  if (error.http_status == 429 || error.http_status == 503) headers.emplace_back("Retry-After", "1");
  exchange.Send(error.http_status, std::string(kJson), error.body, std::move(headers));
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
      BuildGenerationRequest(parsed->params, *backend.codec, backend.limits, parsed->wire,
                             backend.constraints.get());
  if (!built.ok()) return built.status();
  absl::StatusOr<std::unique_ptr<GenerationStream>> stream =
      GenerationStream::Submit(backend.loop.get(), backend.codec.get(), *std::move(built));
  if (!stream.ok()) return stream.status();
  return PreparedGeneration{*std::move(parsed), *std::move(stream)};
}

// One generation over HTTP, from the body to the last byte (see the top of openai_handlers.h).
// Owned by the exchange's OnClientGone callback (until the response is complete or the client
// left), by the preparation task and by posted pumps; the channel notifier holds it weakly.
// Everything but Prepare runs on the connection's strand.
class HttpGeneration : public std::enable_shared_from_this<HttpGeneration> {
 public:
  HttpGeneration(Endpoint endpoint, std::shared_ptr<ServingBackend> backend,
                 std::shared_ptr<HttpExchange> exchange)
      : endpoint_(endpoint), backend_(std::move(backend)), exchange_(std::move(exchange)) {}

  // A generation dropped before it finished (its client left, the server stopped) must not run
  // on in the engine.
  ~HttpGeneration() {
    if (prepared_.ok() && prepared_->stream != nullptr && !prepared_->stream->finished()) {
      prepared_->stream->AbortEngine();
    }
  }

  // On the strand: watch the client, then prepare on `workers`.
  void Start(WorkerPool& workers, std::string body) {
    std::shared_ptr<HttpGeneration> self = shared_from_this();
    exchange_->OnClientGone([self] { self->ClientGone(); });
    workers.Post([self, body = std::move(body)] {
      if (self->client_gone_) return;  // left while queued: nothing to prepare
      self->prepared_ = Prepare(self->endpoint_, body, *self->backend_);
      self->exchange_->Post([self] { self->Begin(); });
    });
  }

 private:
  void ClientGone() {
    client_gone_ = true;
    done_ = true;
    if (began_ && prepared_.ok()) prepared_->stream->AbortEngine();
  }

  // On the strand, once prepared: the error, or the response's start and the first pump.
  void Begin() {
    began_ = true;
    if (!prepared_.ok()) {
      SendError(*exchange_, prepared_.status());
      done_ = true;
      return;
    }
    GenerationStream& stream = *prepared_->stream;
    if (client_gone_) {
      stream.AbortEngine();
      return;
    }
    meta_.endpoint = endpoint_;
    meta_.id = NewResponseId(endpoint_);
    meta_.created = absl::ToUnixSeconds(absl::Now());
    meta_.model = backend_->model_info.name;
    streaming_ = prepared_->parsed.stream;
    if (streaming_) {
      exchange_->StartStream(200, "text/event-stream");
      if (endpoint_ == Endpoint::kChatCompletions) {
        openai::ChunkContent role;
        role.role = true;
        role.has_text = true;
        SendEvent(openai::ChunkBody(meta_, role, prepared_->parsed.include_usage));
      }
      std::weak_ptr<HttpGeneration> weak = weak_from_this();
      exchange_->OnWritten([weak] {
        if (std::shared_ptr<HttpGeneration> self = weak.lock()) self->Pump();
      });
    }
    std::weak_ptr<HttpGeneration> weak = weak_from_this();
    // On the engine thread after every push: must not block, so it only posts a pump (at most
    // one waiting at a time).
    stream.channel().SetNotifier([weak] {
      std::shared_ptr<HttpGeneration> self = weak.lock();
      if (self == nullptr || self->pump_posted_.exchange(true)) return;
      self->exchange_->Post([self] {
        self->pump_posted_ = false;
        self->Pump();
      });
    });
  }

  void SendEvent(const std::string& json) { exchange_->Write(openai::SseEvent(json)); }

  // On the strand: what the engine produced since the last pump, written once the previous
  // write has gone out.
  void Pump() {
    if (done_ || !began_ || !prepared_.ok()) return;
    if (exchange_->queued_bytes() > 0) return;  // OnWritten pumps again
    GenerationStream& stream = *prepared_->stream;
    const openai::ParsedRequest& parsed = prepared_->parsed;
    StreamEvent event;
    absl::StatusOr<bool> got = stream.Drain(&event);
    if (!got.ok()) {
      done_ = true;
      if (streaming_) {
        // Headers are gone: the error travels as an event, as OpenAI's streams report them.
        SendEvent(openai::ErrorFromStatus(got.status()).body);
        exchange_->Write(openai::kSseDone);
        exchange_->EndStream();
      } else {
        SendError(*exchange_, got.status());
      }
      return;
    }
    if (!*got) return;
    if (event.abort_engine) stream.AbortEngine(scheduler::FinishReason::kStopString);
    if (streaming_) {
      StreamOut(parsed, event);
    } else {
      CollectOut(parsed, event);
    }
  }

  void StreamOut(const openai::ParsedRequest& parsed, StreamEvent& event) {
    const bool with_logprobs = parsed.logprobs && !event.logprobs.empty();
    if (!event.text.empty() || with_logprobs) {
      openai::ChunkContent chunk;
      chunk.has_text = true;
      chunk.text = std::move(event.text);
      chunk.with_logprobs = with_logprobs;
      if (with_logprobs) chunk.logprobs = LogprobEntries(*backend_->codec, event.logprobs);
      chunk.text_offset = text_offset_;
      for (const openai::LogprobEntry& e : chunk.logprobs) {
        text_offset_ += static_cast<int64_t>(e.token.size());
      }
      SendEvent(openai::ChunkBody(meta_, chunk, parsed.include_usage));
    }
    if (!event.finished) return;
    done_ = true;
    openai::ChunkContent last;
    last.finish_reason = &event.finish_reason;
    SendEvent(openai::ChunkBody(meta_, last, parsed.include_usage));
    if (parsed.include_usage) {
      SendEvent(openai::UsageChunkBody(meta_, {event.prompt_tokens, event.completion_tokens}));
    }
    exchange_->Write(openai::kSseDone);
    exchange_->EndStream();
  }

  void CollectOut(const openai::ParsedRequest& parsed, StreamEvent& event) {
    text_ += event.text;
    if (parsed.logprobs) {
      for (TokenLogprobs& t : event.logprobs) logprobs_.push_back(std::move(t));
    }
    if (!event.finished) return;
    done_ = true;
    exchange_->Send(200, std::string(kJson),
                    openai::ResponseBody(meta_, text_, event.finish_reason, parsed.logprobs,
                                         LogprobEntries(*backend_->codec, logprobs_),
                                         {event.prompt_tokens, event.completion_tokens}));
  }

  const Endpoint endpoint_;
  const std::shared_ptr<ServingBackend> backend_;
  const std::shared_ptr<HttpExchange> exchange_;
  std::atomic<bool> client_gone_{false};
  std::atomic<bool> pump_posted_{false};
  // Written by the preparation task, then read on the strand only (handed over by Post).
  absl::StatusOr<PreparedGeneration> prepared_ = absl::UnknownError("not prepared");
  // On the strand.
  bool began_ = false;
  bool done_ = false;
  bool streaming_ = false;
  openai::ResponseMeta meta_;
  int64_t text_offset_ = 0;
  std::string text_;                   // not streamed: the whole output
  std::vector<TokenLogprobs> logprobs_;
};

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
  server.Handle("GET", "/", [](HttpRequest, std::shared_ptr<HttpExchange> exchange) {
    exchange->Send(200, "text/html; charset=utf-8", kChatPageHtml);
  });
  server.Handle("GET", "/v1/models", [this](HttpRequest request, std::shared_ptr<HttpExchange> e) {
    HandleModels(request, *e);
  });
  server.Handle("POST", "/v1/completions",
                [this](HttpRequest request, std::shared_ptr<HttpExchange> e) {
                  HandleGeneration(Endpoint::kCompletions, std::move(request), std::move(e));
                });
  server.Handle("POST", "/v1/chat/completions",
                [this](HttpRequest request, std::shared_ptr<HttpExchange> e) {
                  HandleGeneration(Endpoint::kChatCompletions, std::move(request), std::move(e));
                });
}

void OpenAiFrontend::HandleModels(const HttpRequest& request, HttpExchange& exchange) {
  if (!Authorized(request)) {
    SendError(exchange, absl::UnauthenticatedError("missing or wrong API key: send "
                                                   "'Authorization: Bearer KEY'"));
    return;
  }
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = this->backend();
  if (!backend.ok()) {
    SendError(exchange, backend.status());
    return;
  }
  exchange.Send(200, std::string(kJson), openai::ModelsBody((*backend)->model_info.name, created_));
}

void OpenAiFrontend::HandleGeneration(Endpoint endpoint, HttpRequest request,
                                      std::shared_ptr<HttpExchange> exchange) {
  if (!Authorized(request)) {
    SendError(*exchange, absl::UnauthenticatedError("missing or wrong API key: send "
                                                    "'Authorization: Bearer KEY'"));
    return;
  }
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = this->backend();
  if (!backend.ok()) {
    SendError(*exchange, backend.status());
    return;
  }
  auto generation =
      std::make_shared<HttpGeneration>(endpoint, *std::move(backend), std::move(exchange));
  generation->Start(workers_, std::move(request.body));
}

}  // namespace kvserve::server
