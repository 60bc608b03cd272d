// GenerationService: the kvserve.v1.Generation gRPC service on grpc++'s callback API.
//
// Each Generate stream is a ServerWriteReactor: it validates and submits the request to the
// EngineLoop, then is woken by the request's OutputChannel notifier (on the engine thread) and by
// its own write completions (on gRPC threads). It writes at most one message at a time; outputs
// that arrive meanwhile are merged into the next message, so a slow reader gets fewer, larger
// messages and never blocks the engine. No thread is dedicated to a stream.
//
// Cancellation, an expired deadline and a vanished client all reach the reactor as OnCancel (or a
// failed write): the request is aborted in the engine loop, which applies it before its next
// step and frees the request's KV pages.
//
// Every method is registered raw (grpc::ByteBuffer in and out): the service reads its requests
// itself (server/grpc/raw_request.h), so invalid UTF-8 in a string field is INVALID_ARGUMENT
// naming the field and a call cancelled before its request arrived is CANCELLED, where grpc++'s
// own parsing answered UNIMPLEMENTED for both. The wire contract is unchanged.
//
// Until SetBackend() is called (while the model loads) every RPC answers UNAVAILABLE.
//
// With a non-empty API key every RPC of this service needs the metadata
// `authorization: Bearer KEY` (UNAUTHENTICATED otherwise); health and reflection are other
// services and stay open.
//
// Ownership: the service shares ownership of the backend with every live stream (a stream may
// outlive a Shutdown() of the gRPC server by a moment). Thread-safety: all methods thread-safe.
#ifndef KVSERVE_SERVER_GRPC_GENERATION_SERVICE_H_
#define KVSERVE_SERVER_GRPC_GENERATION_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"
#include "kvserve/v1/generation.grpc.pb.h"
#include "server/frontend/serving_backend.h"

namespace kvserve::server {

// Renders a ChatRequest's messages with the backend's template into the equivalent
// GenerateRequest (prompt = the rendered text, add_special_tokens = false). Errors:
// FAILED_PRECONDITION without a template, INVALID_ARGUMENT for a set generation.prompt /
// prompt_token_ids / add_special_tokens or a template that refuses the messages.
absl::StatusOr<kvserve::v1::GenerateRequest> ChatToGenerateRequest(
    const kvserve::v1::ChatRequest& request, const ServingBackend& backend);

// The Generation service with every method raw.
using RawGenerationService = kvserve::v1::Generation::WithRawCallbackMethod_Generate<
    kvserve::v1::Generation::WithRawCallbackMethod_Chat<
        kvserve::v1::Generation::WithRawCallbackMethod_Tokenize<
            kvserve::v1::Generation::WithRawCallbackMethod_GetModelInfo<
                kvserve::v1::Generation::WithRawCallbackMethod_GetServerInfo<
                    kvserve::v1::Generation::Service>>>>>;

class GenerationService final : public RawGenerationService {
 public:
  explicit GenerationService(std::string api_key = "") : api_key_(std::move(api_key)) {}

  // Called once, when the model has loaded.
  void SetBackend(std::shared_ptr<ServingBackend> backend);
  // Reported by GetServerInfo; the engine loop itself refuses new requests.
  void SetDraining() { draining_ = true; }

  // Requests are kvserve.v1.GenerateRequest, ChatRequest, ...; responses the proto's.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Chat(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;

 private:
  // UNAVAILABLE while the model loads.
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend() const;
  // The backend if the call carries the API key (when one is set), else UNAUTHENTICATED.
  absl::StatusOr<std::shared_ptr<ServingBackend>> AuthorizedBackend(
      const grpc::CallbackServerContext& context) const;
  // A call's request read into `request`, and the backend to serve it; or the status to finish
  // the call with: CANCELLED first (no request arrived), then UNAVAILABLE / UNAUTHENTICATED, then
  // the request's own errors (ReadRequest).
  absl::StatusOr<std::shared_ptr<ServingBackend>> AcceptCall(
      const grpc::CallbackServerContext& context, const grpc::ByteBuffer& wire,
      google::protobuf::Message* request) const;

  const std::string api_key_;

  BackendSlot backend_;
  std::atomic<bool> draining_{false};
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_GRPC_GENERATION_SERVICE_H_
