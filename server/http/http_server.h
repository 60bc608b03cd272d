// HttpServer: kvserve's embedded HTTP/1.1 server (on civetweb), for /metrics, /health, the
// OpenAI-compatible API and the chat page.
//
// Routing is exact-path: Handle("GET", "/metrics", ...) answers GET /metrics only. An unknown path
// answers 404 with a JSON error body; a known path with another method answers 405 (with an Allow
// header). Every response is reported to Options::on_response (for the
// kvserve_http_requests_total{path,code} counter; unknown paths are reported as "other" so a
// scanner cannot grow the label set).
//
// Threads: handlers run on civetweb's worker threads, one request per worker. A streaming handler
// (StartStream + Write) holds its worker for as long as it streams, so Options::num_threads bounds
// the number of concurrent HTTP requests, streams included; a further connection waits in
// civetweb's accept queue until a worker is free.
//
// Ownership: the server owns its handlers (copied in by Handle). An HttpRequest and an
// HttpResponseWriter live for one handler call only. Thread-safety: Handle() before Start() only;
// Start, port and Stop from one controlling thread; handlers may run concurrently with each other.
#ifndef KVSERVE_SERVER_HTTP_HTTP_SERVER_H_
#define KVSERVE_SERVER_HTTP_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

struct mg_context;
struct mg_connection;

namespace kvserve::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string query;   // raw, without '?'
  std::string body;
  absl::flat_hash_map<std::string, std::string> headers;  // keys lower-cased
  std::string header(std::string_view name) const;        // "" if absent; name in any case
};

// One response. Either Send() once, or StartStream() then Write() repeatedly. A handler that
// returns without doing either gets a 500.
class HttpResponseWriter {
 public:
  virtual ~HttpResponseWriter() = default;
  virtual void Send(int status, std::string_view content_type, std::string_view body,
                    const std::vector<std::pair<std::string, std::string>>& extra_headers = {}) = 0;
  // Sends the status and headers of a streamed response (no Content-Length; chunked framing for
  // HTTP/1.1 clients, connection-close framing for HTTP/1.0), e.g. "text/event-stream" with
  // Cache-Control: no-cache. Returns false if the client has already gone.
  virtual bool StartStream(int status, std::string_view content_type) = 0;
  // Writes and flushes one chunk (empty chunks are skipped). Returns false once the client has
  // gone (the handler must then abort its work and return). The kernel buffers a little, so the
  // first writes after a disconnect may still succeed; a later one fails.
  virtual bool Write(std::string_view chunk) = 0;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponseWriter&)>;

class HttpServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";  // a numeric IPv4 address ("127.0.0.1", "0.0.0.0")
    int port = 8080;               // 0: the kernel picks a free port (see port())
    int num_threads = 64;          // civetweb workers = concurrent requests, streams included
    // Called once per response with the route's registered path ("other" for unknown paths) and
    // the status code, on the worker thread. Optional.
    std::function<void(const std::string& path, int status)> on_response;
    // Requests with a larger body are refused with 413.
    size_t max_body_bytes = 16 << 20;
  };

  HttpServer();
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register before Start(). `path` is exact ("/v1/completions"); method "GET"/"POST"/...
  // Registering the same method and path twice replaces the handler.
  void Handle(std::string method, std::string path, HttpHandler handler);
  // Binds and starts the workers. The error names host:port when it cannot bind.
  absl::Status Start(const Options& options);
  int port() const { return port_; }  // the bound port (after Start), else 0
  // Stops accepting, then waits for running handlers to return. Idempotent.
  void Stop();

 private:
  static int Dispatch(mg_connection* conn, void* self);
  void Serve(mg_connection* conn);
  // Connects to the listening port and hangs up, to wake civetweb's listener thread.
  void PokeListener() const;

  Options options_;
  // path → method → handler. Immutable after Start(), so workers read it without a lock.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, HttpHandler>> routes_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_HTTP_HTTP_SERVER_H_
