// OpenAiFrontend: the OpenAI-compatible HTTP endpoints and the chat page, registered on the
// HttpServer: GET / (chat page), GET /v1/models, POST /v1/completions, POST
// /v1/chat/completions.
//
// Each request runs on the HttpServer worker thread that received it, except its preparation:
// parsing the body, rendering the chat template, tokenizing and submitting run on a WorkerPool
// with full-size stacks (HTTP workers have small ones). The handler then blocks on the
// GenerationStream's OutputChannel, writing server-sent events as
// tokens arrive (or one JSON body at the end). A write that fails (the client closed the
// connection, e.g. a Stop button) aborts the request in the engine loop, which frees its KV
// pages before its next step. While a stream waits for its first token (queued behind others) a
// comment line is written every second, so a vanished client is noticed then too. A
// non-streamed request writes nothing until it ends, so it runs to completion even if its client
// has left.
//
// With a non-empty API key every /v1/* request must carry `Authorization: Bearer KEY` (401
// otherwise); the chat page itself is public and asks for the key.
//
// Until SetBackend() (while the model loads) the /v1/* endpoints answer 503.
//
// Ownership: shares ownership of the backend with every running handler. Thread-safety: all
// methods thread-safe; handlers run concurrently.
#ifndef KVSERVE_SERVER_HTTP_OPENAI_HANDLERS_H_
#define KVSERVE_SERVER_HTTP_OPENAI_HANDLERS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/frontend/serving_backend.h"
#include "server/frontend/worker_pool.h"
#include "server/http/http_server.h"
#include "server/http/openai_api.h"

namespace kvserve::server {

// The chat page (server/http/chat_page.html, embedded at build time).
extern const char kChatPageHtml[];

class OpenAiFrontend {
 public:
  explicit OpenAiFrontend(std::string api_key);

  void SetBackend(std::shared_ptr<ServingBackend> backend);
  // Registers the endpoints; call before HttpServer::Start. The frontend must outlive `server`'s
  // handlers (stop the server first).
  void Register(HttpServer& server);

 private:
  absl::StatusOr<std::shared_ptr<ServingBackend>> backend() const;
  bool Authorized(const HttpRequest& request) const;
  void HandleModels(const HttpRequest& request, HttpResponseWriter& writer);
  void HandleGeneration(openai::Endpoint endpoint, const HttpRequest& request,
                        HttpResponseWriter& writer);

  // Threads that prepare generations (see the top of this file): a moment of CPU work each.
  static constexpr int kPrepareThreads = 4;

  const std::string api_key_;
  const int64_t created_;  // reported as the model's creation time
  WorkerPool workers_;
  BackendSlot backend_;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_HTTP_OPENAI_HANDLERS_H_
