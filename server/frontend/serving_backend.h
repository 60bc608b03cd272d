// ServingBackend: the loaded model as every transport serves it: the engine loop, the text codec,
// the limits requests are validated against, what the model is, and its chat template. Built once
// by `kvserve serve` when the model has loaded, then shared (std::shared_ptr) by the gRPC service,
// the HTTP handlers and every live stream.
//
// Thread-safety: immutable after construction except through the EngineLoop (thread-safe); const
// methods may be called from any thread.
#ifndef KVSERVE_SERVER_FRONTEND_SERVING_BACKEND_H_
#define KVSERVE_SERVER_FRONTEND_SERVING_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/json.h"
#include "constrain/constraint_compiler.h"
#include "server/frontend/request_builder.h"
#include "server/frontend/tool_calls.h"
#include "server/models/chat_template.h"
#include "server/models/text_codec.h"
#include "serving/engine_loop.h"

namespace kvserve::server {

// What the model is, as GetModelInfo and GET /v1/models report it.
struct ModelDescription {
  std::string name;
  std::string architecture;
  int32_t context_length = 0;
  int32_t vocab_size = 0;
  std::vector<int32_t> eos_token_ids;  // sorted
  std::string weight_dtype;
  std::string kv_cache_dtype;
  int32_t bos_token_id = -1;  // -1 when the vocabulary has none
  int32_t kv_page_size = 0;
  bool demo = false;  // the built-in demo model (random weights, byte-level vocabulary)
};

// The loaded model as the service sees it.
struct ServingBackend {
  std::unique_ptr<serving::EngineLoop> loop;
  std::unique_ptr<TextCodec> codec;
  // Structured output over the codec's vocabulary (null: constraints are refused).
  std::shared_ptr<constrain::ConstraintCompiler> constraints;
  ModelDescription model_info;
  RequestLimits limits;
  // The model's chat template for Chat; null when the model has none or it did not parse, and
  // then `chat_template_error` says which (Chat answers FAILED_PRECONDITION with it).
  std::shared_ptr<const ChatTemplate> chat_template;
  std::string chat_template_error = "the model has no chat template";
  // How the template's model writes tool calls (kNone: chat requests with tools are refused).
  ToolCallFormat tool_call_format = ToolCallFormat::kNone;
  // The vocabulary's BOS / EOS text, passed to the template as bos_token / eos_token.
  std::string bos_token;
  std::string eos_token;

  // The prompt for a chat: `messages` rendered with the chat template and the BOS/EOS texts.
  // Errors: FAILED_PRECONDITION naming why there is no usable template; the template's own
  // (raise_exception, type errors) as INVALID_ARGUMENT.
  // `tools`: OpenAI's tools array for the template (null: None).
  absl::StatusOr<std::string> RenderChat(std::vector<ChatMessage> messages,
                                         bool add_generation_prompt,
                                         const base::JsonValue* tools = nullptr) const;
};

// Where a transport finds the backend: empty while the model loads, set once by `serve`.
// Thread-safety: thread-safe.
class BackendSlot {
 public:
  void Set(std::shared_ptr<ServingBackend> backend) ABSL_LOCKS_EXCLUDED(mu_);
  // UNAVAILABLE "the model is still loading" until Set.
  absl::StatusOr<std::shared_ptr<ServingBackend>> Get() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<ServingBackend> backend_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_SERVING_BACKEND_H_
