#include "server/http/openai_handlers.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/utf8.h"
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
  if (error.http_status == 429 || error.http_status == 503)
    headers.emplace_back("Retry-After", "1");
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

// A prepared request: its first sample submitted; with n > 1 the request the others copy.
struct PreparedGeneration {
  openai::ParsedRequest parsed;
  BuiltRequest built;
  std::unique_ptr<GenerationStream> first;
};

// Tools need a format the template teaches; "required" or a named function becomes a grammar
// that forces one call whose arguments follow the function's schema.
absl::Status PrepareTools(const ServingBackend& backend, openai::ParsedRequest* parsed) {
  using Choice = openai::ParsedRequest::ToolChoice;
  if (!parsed->tools.has_value()) return absl::OkStatus();
  if (backend.tool_call_format == ToolCallFormat::kNone) {
    return InvalidParam("tools",
                        "the model's chat template shows no tool-call format kvserve reads "
                        "(Hermes <tool_call>, Llama 3.1 JSON, Mistral [TOOL_CALLS])");
  }
  if (parsed->tool_choice != Choice::kRequired && parsed->tool_choice != Choice::kNamed) {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> grammar = ToolCallGrammar(
      backend.tool_call_format, parsed->functions,
      parsed->tool_choice == Choice::kNamed ? parsed->tool_choice_name : std::string());
  if (!grammar.ok()) return InvalidParam("tool_choice", grammar.status().message());
  parsed->params.constraint.kind = constrain::ConstraintSpec::Kind::kGrammar;
  parsed->params.constraint.text = *std::move(grammar);
  parsed->params.constraint_field = "tool_choice";
  return absl::OkStatus();
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
  if (absl::Status st = PrepareTools(backend, &*parsed); !st.ok()) return st;
  if (endpoint == Endpoint::kChatCompletions) {
    absl::StatusOr<std::string> prompt =
        backend.RenderChat(std::move(parsed->messages), /*add_generation_prompt=*/true,
                           parsed->tools.has_value() ? &*parsed->tools : nullptr);
    if (!prompt.ok()) return prompt.status();
    parsed->params.prompt = *std::move(prompt);
    // The template writes the special tokens (BOS) itself, as transformers does.
    parsed->params.add_special_tokens = false;
  }
  absl::StatusOr<BuiltRequest> built = BuildGenerationRequest(
      parsed->params, *backend.codec, backend.limits, parsed->wire, backend.constraints.get());
  if (!built.ok()) return built.status();
  PreparedGeneration out{*std::move(parsed), *built, nullptr};
  absl::StatusOr<std::unique_ptr<GenerationStream>> stream =
      GenerationStream::Submit(backend.loop.get(), backend.codec.get(), *std::move(built));
  if (!stream.ok()) return stream.status();
  out.first = *std::move(stream);
  return out;
}

// The prompt as echo repeats it: the text sent, or its token ids' pieces joined as the output's
// are (the Tokenize RPC's text; invalid UTF-8 replaced).
std::string EchoText(const GenerationParams& params, const TextCodec& codec) {
  if (params.prompt.has_value()) return *params.prompt;
  if (!params.prompt_token_ids.has_value()) return "";
  return base::SanitizeUtf8(codec.Decode(*params.prompt_token_ids));
}

// Sample `index` of a request with n > 1: its own seed (the request's + index) when seeded.
BuiltRequest SampleRequest(const BuiltRequest& built, int index) {
  BuiltRequest sample = built;
  if (sample.engine.sampling.seed.has_value()) *sample.engine.sampling.seed += index;
  return sample;
}

// One generation over HTTP, from the body to the last byte (see the top of openai_handlers.h).
// With n > 1 it serves n samples of one prompt as choices 0..n-1: the first is submitted alone,
// the others once its first output shows its prompt is computed, so their prompt pages come from
// the prefix cache. Owned by the exchange's OnClientGone callback (until the response is
// complete or the client left), by the preparation task and by posted pumps; the channel
// notifiers hold it weakly. Everything but Prepare runs on the connection's strand.
class HttpGeneration : public std::enable_shared_from_this<HttpGeneration> {
 public:
  HttpGeneration(Endpoint endpoint, std::shared_ptr<ServingBackend> backend,
                 std::shared_ptr<HttpExchange> exchange)
      : endpoint_(endpoint), backend_(std::move(backend)), exchange_(std::move(exchange)) {}

  // A generation dropped before it finished (its client left, the server stopped) must not run
  // on in the engine.
  ~HttpGeneration() { AbortAll(); }

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
  // What the response has of one choice so far.
  struct Choice {
    std::unique_ptr<GenerationStream> stream;
    bool done = false;
    scheduler::FinishReason finish_reason = scheduler::FinishReason::kStop;
    int32_t completion_tokens = 0;
    int64_t text_offset = 0;
    std::string text;                         // not streamed: the whole output
    std::vector<TokenLogprobs> logprobs;      // not streamed
    std::unique_ptr<ToolCallStreamer> tools;  // streamed chat with tools: calls held back
  };

  // Chat with tools (and tool_choice not "none"): calls are read from the output.
  bool ReadsToolCalls() const {
    return prepared_->parsed.tools.has_value() &&
           prepared_->parsed.tool_choice != openai::ParsedRequest::ToolChoice::kNone;
  }

  void AbortAll() {
    for (Choice& c : choices_) {
      if (c.stream != nullptr && !c.stream->finished()) c.stream->AbortEngine();
    }
    if (prepared_.ok() && prepared_->first != nullptr && !prepared_->first->finished()) {
      prepared_->first->AbortEngine();
    }
  }

  void ClientGone() {
    client_gone_ = true;
    done_ = true;
    if (began_) AbortAll();
  }

  // On the strand, once prepared: the error, or the response's start and the first pump.
  void Begin() {
    began_ = true;
    if (!prepared_.ok()) {
      SendError(*exchange_, prepared_.status());
      done_ = true;
      return;
    }
    if (client_gone_) {
      AbortAll();
      return;
    }
    meta_.endpoint = endpoint_;
    meta_.id = NewResponseId(endpoint_);
    meta_.created = absl::ToUnixSeconds(absl::Now());
    meta_.model = backend_->model_info.name;
    streaming_ = prepared_->parsed.stream;
    if (prepared_->parsed.echo) echo_ = EchoText(prepared_->parsed.params, *backend_->codec);
    if (streaming_) {
      exchange_->StartStream(200, "text/event-stream");
      std::weak_ptr<HttpGeneration> weak = weak_from_this();
      exchange_->OnWritten([weak] {
        if (std::shared_ptr<HttpGeneration> self = weak.lock()) self->Pump();
      });
    }
    AddChoice(std::move(prepared_->first));
  }

  // Choice number choices_.size(): its chat role chunk, and its channel's notifier, which runs
  // on the engine thread after every push, must not block, and so only posts a pump (at most
  // one waiting at a time for the whole response).
  void AddChoice(std::unique_ptr<GenerationStream> stream) {
    if (streaming_ && (endpoint_ == Endpoint::kChatCompletions || !echo_.empty())) {
      // Chat: the role first; completions with echo: the prompt first.
      openai::ChunkContent first;
      first.index = static_cast<int32_t>(choices_.size());
      first.role = endpoint_ == Endpoint::kChatCompletions;
      first.has_text = true;
      first.text = echo_;
      SendEvent(openai::ChunkBody(meta_, first, prepared_->parsed.include_usage));
    }
    // The choice exists before its notifier: SetNotifier runs it at once when outputs are
    // already queued, and the pump it posts may run right away on this strand.
    GenerationStream& added = *(choices_.emplace_back().stream = std::move(stream));
    if (!streaming_) choices_.back().text = echo_;
    if (streaming_ && ReadsToolCalls()) {
      choices_.back().tools = std::make_unique<ToolCallStreamer>(backend_->tool_call_format);
    }
    std::weak_ptr<HttpGeneration> weak = weak_from_this();
    added.channel().SetNotifier([weak] {
      std::shared_ptr<HttpGeneration> self = weak.lock();
      if (self == nullptr || self->pump_posted_.exchange(true)) return;
      self->exchange_->Post([self] {
        self->pump_posted_ = false;
        self->Pump();
      });
    });
  }

  // Samples 1..n-1, once the first one's prompt is in the KV cache. False after an error.
  bool SubmitSiblings() {
    siblings_submitted_ = true;
    for (int i = 1; i < prepared_->parsed.n; ++i) {
      absl::StatusOr<std::unique_ptr<GenerationStream>> stream = GenerationStream::Submit(
          backend_->loop.get(), backend_->codec.get(), SampleRequest(prepared_->built, i));
      if (!stream.ok()) {
        Fail(stream.status());
        return false;
      }
      AddChoice(*std::move(stream));
    }
    return true;
  }

  void SendEvent(const std::string& json) { exchange_->Write(openai::SseEvent(json)); }

  void Fail(const absl::Status& status) {
    done_ = true;
    AbortAll();
    if (streaming_) {
      // Headers are gone: the error travels as an event, as OpenAI's streams report them.
      SendEvent(openai::ErrorFromStatus(status).body);
      exchange_->Write(openai::kSseDone);
      exchange_->EndStream();
    } else {
      SendError(*exchange_, status);
    }
  }

  // On the strand: what the engine produced since the last pump, written once the previous
  // write has gone out.
  void Pump() {
    // A pump posted from inside a pump (SetNotifier of a new choice runs it inline on this
    // strand) is deferred to the end of the outer one.
    if (pumping_) {
      pump_again_ = true;
      return;
    }
    pumping_ = true;
    do {
      pump_again_ = false;
      PumpOnce();
    } while (pump_again_ && !done_);
    pumping_ = false;
  }

  void PumpOnce() {
    if (done_ || !began_ || !prepared_.ok()) return;
    if (exchange_->queued_bytes() > 0) return;      // OnWritten pumps again
    for (size_t i = 0; i < choices_.size(); ++i) {  // index: SubmitSiblings appends
      if (choices_[i].done) continue;
      StreamEvent event;
      absl::StatusOr<bool> got = choices_[i].stream->Drain(&event);
      if (!got.ok()) return Fail(got.status());
      if (!*got) continue;
      if (event.abort_engine) choices_[i].stream->AbortEngine(scheduler::FinishReason::kStopString);
      if (i == 0 && event.finished) prompt_tokens_ = event.prompt_tokens;
      if (streaming_) {
        StreamOut(static_cast<int32_t>(i), event);
      } else {
        CollectOut(choices_[i], event);
      }
      if (i == 0 && !siblings_submitted_ && prepared_->parsed.n > 1 &&
          (!event.token_ids.empty() || event.finished) && !SubmitSiblings()) {
        return;
      }
    }
    if (!choices_.empty() && static_cast<int>(choices_.size()) == prepared_->parsed.n &&
        std::all_of(choices_.begin(), choices_.end(), [](const Choice& c) { return c.done; })) {
      Finish();
    }
  }

  void StreamOut(int32_t index, StreamEvent& event) {
    const openai::ParsedRequest& parsed = prepared_->parsed;
    Choice& choice = choices_[index];
    const bool with_logprobs = parsed.logprobs && !event.logprobs.empty();
    if (choice.tools != nullptr) event.text = choice.tools->Push(event.text);
    if (!event.text.empty() || with_logprobs) {
      openai::ChunkContent chunk;
      chunk.index = index;
      chunk.has_text = true;
      chunk.text = std::move(event.text);
      chunk.with_logprobs = with_logprobs;
      if (with_logprobs) chunk.logprobs = LogprobEntries(*backend_->codec, event.logprobs);
      chunk.text_offset = choice.text_offset;
      for (const openai::LogprobEntry& e : chunk.logprobs) {
        choice.text_offset += static_cast<int64_t>(e.token.size());
      }
      SendEvent(openai::ChunkBody(meta_, chunk, parsed.include_usage));
    }
    if (!event.finished) return;
    Finished(choice, event);
    openai::ChunkContent last;
    last.index = index;
    if (choice.tools != nullptr) last.tool_calls_finish = SendHeldBack(index, *choice.tools);
    last.finish_reason = &event.finish_reason;
    SendEvent(openai::ChunkBody(meta_, last, parsed.include_usage));
  }

  // What a streamed choice held back: text that was not a call after all, then the calls.
  // True when there were calls.
  bool SendHeldBack(int32_t index, ToolCallStreamer& tools) {
    const bool include_usage = prepared_->parsed.include_usage;
    ToolOutput rest = tools.Finish();
    if (!rest.content.empty()) {
      openai::ChunkContent text;
      text.index = index;
      text.has_text = true;
      text.text = std::move(rest.content);
      SendEvent(openai::ChunkBody(meta_, text, include_usage));
    }
    if (rest.calls.empty()) return false;
    openai::ChunkContent calls;
    calls.index = index;
    calls.tool_calls = std::move(rest.calls);
    SendEvent(openai::ChunkBody(meta_, calls, include_usage));
    return true;
  }

  void CollectOut(Choice& choice, StreamEvent& event) {
    choice.text += event.text;
    if (prepared_->parsed.logprobs) {
      for (TokenLogprobs& t : event.logprobs) choice.logprobs.push_back(std::move(t));
    }
    if (event.finished) Finished(choice, event);
  }

  static void Finished(Choice& choice, const StreamEvent& event) {
    choice.done = true;
    choice.finish_reason = event.finish_reason;
    choice.completion_tokens = event.completion_tokens;
  }

  // Every choice finished: the usage (the prompt counted once) and the end of the response.
  void Finish() {
    done_ = true;
    const openai::ParsedRequest& parsed = prepared_->parsed;
    openai::Usage usage{prompt_tokens_, 0};
    for (const Choice& c : choices_) usage.completion_tokens += c.completion_tokens;
    if (streaming_) {
      if (parsed.include_usage) SendEvent(openai::UsageChunkBody(meta_, usage));
      exchange_->Write(openai::kSseDone);
      exchange_->EndStream();
      return;
    }
    std::vector<openai::ChoiceBody> bodies;
    for (Choice& c : choices_) {
      openai::ChoiceBody& body = bodies.emplace_back();
      body.finish_reason = c.finish_reason;
      body.logprobs = LogprobEntries(*backend_->codec, c.logprobs);
      if (ReadsToolCalls()) {
        ToolOutput read = ParseToolCalls(backend_->tool_call_format, c.text);
        body.text = std::move(read.content);
        body.tool_calls = std::move(read.calls);
      } else {
        body.text = std::move(c.text);
      }
    }
    exchange_->Send(200, std::string(kJson),
                    openai::ResponseBody(meta_, bodies, parsed.logprobs, usage));
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
  bool siblings_submitted_ = false;
  std::string echo_;  // completions with echo: the prompt's text
  bool pumping_ = false;
  bool pump_again_ = false;
  openai::ResponseMeta meta_;
  std::vector<Choice> choices_;
  int32_t prompt_tokens_ = 0;
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
