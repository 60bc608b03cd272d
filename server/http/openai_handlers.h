// OpenAiFrontend: the OpenAI-compatible HTTP endpoints and the chat page, registered on the
// HttpServer: GET / (chat page), GET /v1/models, POST /v1/completions, POST
// /v1/chat/completions.
//
// Nothing here blocks the HTTP server's event loop. A generation request is handed to a
// WorkerPool with full-size stacks, which parses the body, renders the chat template, tokenizes
// and submits (walks over untrusted input, and CPU time the loop cannot spend). The request's
// OutputChannel notifier (on the engine thread) then posts a pump onto the connection's strand,
// which drains the channel and writes server-sent events (or, at the end, one JSON body). The
// pump writes only when the previous write has gone out (HttpExchange::OnWritten), so a slow
// reader gets fewer, larger events and never makes the engine wait. A client that closes its
// connection — streamed or not, queued, prepared or running — aborts its request in the engine
// loop, which frees its KV pages before its next step.
//
// A full queue answers 429 and a loading or draining server 503, both with Retry-After.
//
// With a non-empty API key every /v1/* request must carry `Authorization: Bearer KEY` (401
// otherwise); the chat page itself is public and asks for the key.
//
// Until SetBackend() (while the model loads) the /v1/* endpoints answer 503.
//
// Ownership: shares ownership of the backend with every running generation; a generation may
// outlive the HttpServer (its writes then do nothing). Thread-safety: all methods thread-safe.
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
  void HandleModels(const HttpRequest& request, HttpExchange& exchange);
  void HandleGeneration(openai::Endpoint endpoint, HttpRequest request,
                        std::shared_ptr<HttpExchange> exchange);

  // Threads that prepare generations (see the top of this file): a moment of CPU work each.
  static constexpr int kPrepareThreads = 4;

  const std::string api_key_;
  const int64_t created_;  // reported as the model's creation time
  WorkerPool workers_;
  BackendSlot backend_;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_HTTP_OPENAI_HANDLERS_H_
