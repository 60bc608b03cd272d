#include "server/grpc/generation_service.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/utf8.h"
#include "server/frontend/auth.h"
#include "server/frontend/generation_stream.h"
#include "server/grpc/proto_request.h"
#include "server/grpc/raw_request.h"
#include "server/grpc/status_mapping.h"

namespace kvserve::server {
namespace {

using kvserve::v1::FinishReason;
using kvserve::v1::GenerateRequest;
using kvserve::v1::GenerateResponse;

// The one mapping of finish reasons to the proto's.
FinishReason ToProto(scheduler::FinishReason reason) {
  switch (reason) {
    case scheduler::FinishReason::kStop:
      return kvserve::v1::FINISH_REASON_STOP;
    case scheduler::FinishReason::kStopString:
      return kvserve::v1::FINISH_REASON_STOP_STRING;
    case scheduler::FinishReason::kLength:
      return kvserve::v1::FINISH_REASON_LENGTH;
    case scheduler::FinishReason::kContextLength:
      return kvserve::v1::FINISH_REASON_CONTEXT_LENGTH;
    case scheduler::FinishReason::kCancelled:
      return kvserve::v1::FINISH_REASON_CANCELLED;
    case scheduler::FinishReason::kError:
      break;  // an error ends the call with its status, never with a finish reason
  }
  return kvserve::v1::FINISH_REASON_UNSPECIFIED;
}

void ToProto(const ModelDescription& model, kvserve::v1::ModelInfo* out) {
  out->set_name(model.name);
  out->set_architecture(model.architecture);
  out->set_context_length(model.context_length);
  out->set_vocab_size(model.vocab_size);
  out->mutable_eos_token_ids()->Assign(model.eos_token_ids.begin(), model.eos_token_ids.end());
  out->set_weight_dtype(model.weight_dtype);
  out->set_kv_cache_dtype(model.kv_cache_dtype);
  out->set_bos_token_id(model.bos_token_id);
  out->set_kv_page_size(model.kv_page_size);
  out->set_demo(model.demo);
}

void FillTokenLogprob(const TextCodec& codec, int32_t id, float logprob,
                      kvserve::v1::TokenLogprob* out) {
  out->set_token_id(id);
  out->set_logprob(logprob);
  std::string piece = codec.TokenPiece(id);
  out->set_text(base::SanitizeUtf8(piece));
  out->set_token_bytes(std::move(piece));
}

// One Generate stream. Lifetime: owned by itself through `self_` from creation until OnDone, and
// by the channel notifier's weak reference while a notification runs; so the engine thread never
// touches a deleted reactor.
class GenerateReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                        public std::enable_shared_from_this<GenerateReactor> {
 public:
  explicit GenerateReactor(std::shared_ptr<ServingBackend> backend)
      : backend_(std::move(backend)) {}

  // Validates and submits, or finishes the call with the error.
  void Start(const GenerateRequest& request) {
    absl::StatusOr<BuiltRequest> built =
        BuildGenerationRequest(request, *backend_->codec, backend_->limits,
                               backend_->constraints.get());
    if (!built.ok()) {
      Finish(ToGrpcStatus(built.status()));
      return;
    }
    absl::StatusOr<std::unique_ptr<GenerationStream>> stream =
        GenerationStream::Submit(backend_->loop.get(), backend_->codec.get(), *std::move(built));
    if (!stream.ok()) {
      Finish(ToGrpcStatus(stream.status()));
      return;
    }
    serving::OutputChannel* channel;
    {
      absl::MutexLock lock(&mu_);
      stream_ = *std::move(stream);
      channel = &stream_->channel();
    }
    std::weak_ptr<GenerateReactor> weak = shared_from_this();
    // Runs on the engine thread after every push; must not block.
    channel->SetNotifier([weak] {
      if (std::shared_ptr<GenerateReactor> self = weak.lock()) self->Pump();
    });
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) cancelled_ = true;  // the client is gone
    }
    if (!ok) AbortInEngine();
    Pump();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    AbortInEngine();
    Pump();
  }

  void OnDone() override {
    std::shared_ptr<GenerateReactor> keep;
    GenerationStream* stream;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      keep = std::move(self_);
      stream = stream_.get();
    }
    AbortInEngine();
    if (stream != nullptr) stream->channel().SetNotifier(nullptr);
    // `keep` releases the reactor here (or when a running notification ends).
  }

  std::shared_ptr<GenerateReactor> self_;

 private:
  // Aborts the engine request unless it already finished (its id may be reused afterwards).
  // The stream lives as long as the reactor, so it is used outside the lock.
  void AbortInEngine(scheduler::FinishReason cause = scheduler::FinishReason::kCancelled) {
    GenerationStream* stream;
    {
      absl::MutexLock lock(&mu_);
      stream = stream_.get();
    }
    if (stream != nullptr) stream->AbortEngine(cause);
  }

  // Sends what is ready, if no write is in flight. Called from the notifier, OnWriteDone and
  // OnCancel; never holds mu_ while calling into gRPC.
  void Pump() {
    enum class Action { kNone, kWrite, kWriteAndFinish, kFinish };
    Action action = Action::kNone;
    grpc::Status status;
    bool abort = false;
    {
      absl::MutexLock lock(&mu_);
      if (done_ || finish_called_ || write_in_flight_ || stream_ == nullptr) return;
      if (cancelled_) {
        action = Action::kFinish;
        status = grpc::Status(grpc::StatusCode::CANCELLED, "the request was cancelled");
      } else {
        response_.Clear();
        absl::Status error;
        const bool ready = DrainLocked(&response_, &error, &abort);
        if (!error.ok()) {
          action = Action::kFinish;
          status = ToGrpcStatus(error);
        } else if (ready) {
          if (absl::Status written = WriteResponse(response_, &wire_response_); !written.ok()) {
            action = Action::kFinish;
            status = ToGrpcStatus(written);
          } else {
            action = final_ready_ ? Action::kWriteAndFinish : Action::kWrite;
          }
        }
      }
      if (action == Action::kWrite) write_in_flight_ = true;
      if (action == Action::kFinish || action == Action::kWriteAndFinish) finish_called_ = true;
    }
    if (abort) AbortInEngine(scheduler::FinishReason::kStopString);
    switch (action) {
      case Action::kNone:
        break;
      case Action::kWrite:
        StartWrite(&wire_response_);
        break;
      case Action::kWriteAndFinish:
        StartWriteAndFinish(&wire_response_, grpc::WriteOptions(), grpc::Status::OK);
        break;
      case Action::kFinish:
        Finish(status);
        break;
    }
  }

  // Moves every queued engine output into `response`. Returns whether there is something to
  // send; sets final_ready_ when `response` is the last message, `*error` when the engine failed
  // the request, `*abort` when a stop string ended it (the engine must stop generating).
  bool DrainLocked(GenerateResponse* response, absl::Status* error, bool* abort)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const TextCodec& codec = *backend_->codec;
    response->set_request_id(stream_->request_id());
    StreamEvent event;
    absl::StatusOr<bool> any = stream_->Drain(&event);
    if (!any.ok()) {
      *error = any.status();
      return false;
    }
    if (!*any) return false;
    *abort = event.abort_engine;
    response->mutable_token_ids()->Assign(event.token_ids.begin(), event.token_ids.end());
    if (stream_->options().num_logprobs > 0) {
      for (const TokenLogprobs& token : event.logprobs) {
        kvserve::v1::Logprobs* lp = response->add_logprobs();
        FillTokenLogprob(codec, token.token_id, token.logprob, lp->mutable_chosen());
        for (const auto& [id, logprob] : token.top) {
          FillTokenLogprob(codec, id, logprob, lp->add_top());
        }
      }
    }
    response->set_text(std::move(event.text));
    if (event.finished) {
      response->set_finish_reason(ToProto(event.finish_reason));
      if (event.finish_reason == scheduler::FinishReason::kStopString) {
        response->set_matched_stop(event.matched_stop);
      }
      kvserve::v1::Usage* usage = response->mutable_usage();
      usage->set_prompt_tokens(event.prompt_tokens);
      usage->set_completion_tokens(event.completion_tokens);
      usage->set_cached_prompt_tokens(event.cached_prompt_tokens);
      kvserve::v1::Timings* timings = response->mutable_timings();
      timings->set_queue_seconds(event.stats.queue_seconds);
      timings->set_time_to_first_token_seconds(event.stats.time_to_first_token_seconds);
      timings->set_total_seconds(event.stats.total_seconds);
      final_ready_ = true;
    }
    return true;
  }

  const std::shared_ptr<ServingBackend> backend_;

  absl::Mutex mu_;
  std::unique_ptr<GenerationStream> stream_ ABSL_GUARDED_BY(mu_);
  bool final_ready_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  // The message being written and its bytes; touched only when no write runs.
  GenerateResponse response_;
  grpc::ByteBuffer wire_response_;
};

// Finishes a unary call with `status`.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// Finishes a unary call with its response, as bytes in `wire`.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const google::protobuf::Message& response,
                                      grpc::ByteBuffer* wire) {
  return FinishUnary(context, ToGrpcStatus(WriteResponse(response, wire)));
}

}  // namespace

void GenerationService::SetBackend(std::shared_ptr<ServingBackend> backend) {
  backend_.Set(std::move(backend));
}

absl::StatusOr<std::shared_ptr<ServingBackend>> GenerationService::backend() const {
  return backend_.Get();
}

namespace {

// A reactor that only reports an error.
class ErrorReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit ErrorReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<std::shared_ptr<ServingBackend>> GenerationService::AuthorizedBackend(
    const grpc::CallbackServerContext& context) const {
  if (!api_key_.empty()) {
    bool ok = false;
    const auto [begin, end] = context.client_metadata().equal_range("authorization");
    for (auto it = begin; it != end && !ok; ++it) {
      ok = BearerTokenMatches(absl::string_view(it->second.data(), it->second.size()), api_key_);
    }
    if (!ok) {
      return absl::UnauthenticatedError(
          "missing or wrong API key: send the metadata 'authorization: Bearer KEY'");
    }
  }
  return backend();
}

absl::StatusOr<std::shared_ptr<ServingBackend>> GenerationService::AcceptCall(
    const grpc::CallbackServerContext& context, const grpc::ByteBuffer& wire,
    google::protobuf::Message* request) const {
  const absl::Status read = ReadRequest(wire, request);
  if (read.code() == absl::StatusCode::kCancelled) return read;
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = AuthorizedBackend(context);
  if (!backend.ok()) return backend.status();
  if (!read.ok()) return read;
  return backend;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* GenerationService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* wire) {
  GenerateRequest request;
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = AcceptCall(*context, *wire, &request);
  if (!backend.ok()) return new ErrorReactor(ToGrpcStatus(backend.status()));
  auto reactor = std::make_shared<GenerateReactor>(*std::move(backend));
  reactor->self_ = reactor;
  reactor->Start(request);
  return reactor.get();
}

absl::StatusOr<GenerateRequest> ChatToGenerateRequest(const kvserve::v1::ChatRequest& request,
                                                      const ServingBackend& backend) {
  const GenerateRequest& generation = request.generation();
  if (generation.input_case() != GenerateRequest::INPUT_NOT_SET) {
    return absl::InvalidArgumentError(
        "generation.prompt / generation.prompt_token_ids must be unset in a ChatRequest: the "
        "rendered messages are the prompt");
  }
  if (generation.has_add_special_tokens()) {
    return absl::InvalidArgumentError(
        "generation.add_special_tokens must be unset in a ChatRequest: the chat template adds "
        "the special tokens");
  }
  if (request.messages().empty()) return absl::InvalidArgumentError("messages is empty");
  std::vector<ChatMessage> messages;
  for (const kvserve::v1::ChatMessage& m : request.messages()) {
    messages.push_back({m.role(), m.content()});
  }
  absl::StatusOr<std::string> prompt = backend.RenderChat(
      std::move(messages), !request.has_add_generation_prompt() || request.add_generation_prompt());
  if (!prompt.ok()) return prompt.status();
  GenerateRequest out = generation;
  out.set_prompt(*std::move(prompt));
  out.set_add_special_tokens(false);
  return out;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* GenerationService::Chat(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* wire) {
  kvserve::v1::ChatRequest request;
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = AcceptCall(*context, *wire, &request);
  if (!backend.ok()) return new ErrorReactor(ToGrpcStatus(backend.status()));
  absl::StatusOr<GenerateRequest> generate = ChatToGenerateRequest(request, **backend);
  if (!generate.ok()) return new ErrorReactor(ToGrpcStatus(generate.status()));
  // From here on exactly the Generate path.
  auto reactor = std::make_shared<GenerateReactor>(*std::move(backend));
  reactor->self_ = reactor;
  reactor->Start(*generate);
  return reactor.get();
}

namespace {

absl::StatusOr<kvserve::v1::TokenizeResponse> TokenizeWith(
    const TextCodec& codec, const kvserve::v1::TokenizeRequest& request) {
  std::vector<int32_t> ids;
  switch (request.input_case()) {
    case kvserve::v1::TokenizeRequest::kText: {
      const bool add_special = !request.has_add_special_tokens() || request.add_special_tokens();
      absl::StatusOr<std::vector<int32_t>> encoded = codec.Encode(request.text(), add_special);
      if (!encoded.ok()) return encoded.status();
      ids = std::move(*encoded);
      break;
    }
    case kvserve::v1::TokenizeRequest::kTokenIds: {
      const auto& in = request.token_ids().ids();
      for (int i = 0; i < in.size(); ++i) {
        if (in[i] < 0 || in[i] >= codec.vocab_size()) {
          return absl::InvalidArgumentError(
              absl::StrFormat("token_ids[%d] = %d is outside the vocabulary [0, %d)", i, in[i],
                              codec.vocab_size()));
        }
      }
      ids.assign(in.begin(), in.end());
      break;
    }
    default:
      return absl::InvalidArgumentError("input is missing: set text or token_ids");
  }
  kvserve::v1::TokenizeResponse response;
  response.mutable_token_ids()->Assign(ids.begin(), ids.end());
  response.set_text(base::SanitizeUtf8(codec.Decode(ids)));
  return response;
}

}  // namespace

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* wire,
                                                      grpc::ByteBuffer* wire_response) {
  kvserve::v1::TokenizeRequest request;
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = AcceptCall(*context, *wire, &request);
  if (!backend.ok()) return FinishUnary(context, ToGrpcStatus(backend.status()));
  absl::StatusOr<kvserve::v1::TokenizeResponse> response =
      TokenizeWith(*(*backend)->codec, request);
  if (!response.ok()) return FinishUnary(context, ToGrpcStatus(response.status()));
  return FinishUnary(context, *response, wire_response);
}

grpc::ServerUnaryReactor* GenerationService::GetModelInfo(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* wire,
                                                          grpc::ByteBuffer* wire_response) {
  kvserve::v1::GetModelInfoRequest request;
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = AcceptCall(*context, *wire, &request);
  if (!backend.ok()) return FinishUnary(context, ToGrpcStatus(backend.status()));
  kvserve::v1::ModelInfo response;
  ToProto((*backend)->model_info, &response);
  return FinishUnary(context, response, wire_response);
}

grpc::ServerUnaryReactor* GenerationService::GetServerInfo(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* wire,
                                                           grpc::ByteBuffer* wire_response) {
  kvserve::v1::GetServerInfoRequest request;
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend = AcceptCall(*context, *wire, &request);
  if (!backend.ok()) return FinishUnary(context, ToGrpcStatus(backend.status()));
  const serving::EngineLoad load = (*backend)->loop->Load();
  kvserve::v1::ServerInfo response;
  response.set_running_requests(load.running);
  response.set_waiting_requests(load.waiting);
  response.set_kv_cache_usage(load.kv_usage);
  response.set_free_kv_pages(load.free_pages);
  response.set_total_kv_pages(load.total_pages);
  response.set_draining(draining_);
  return FinishUnary(context, response, wire_response);
}

}  // namespace kvserve::server
