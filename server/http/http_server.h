// HttpServer: kvserve's embedded HTTP/1.1 server on an event loop (Boost.Beast over Boost.Asio),
// for /metrics, /health, the OpenAI-compatible API and the chat page; optionally over TLS.
//
// Routing is exact-path: Handle("GET", "/metrics", ...) answers GET /metrics only. An unknown path
// answers 404 with a JSON error body; a known path with another method answers 405 (with an Allow
// header). Every response is reported to Options::on_response (for the
// kvserve_http_requests_total{path,code} counter; unknown paths are reported as "other" so a
// scanner cannot grow the label set).
//
// Threads: Options::io_threads threads run one io_context; every connection is a strand on it,
// so its reads, writes, timers and the callbacks below never run concurrently with each other.
// No thread belongs to a connection or a stream. Handlers are called on the connection's strand
// and must not block: work that takes time goes elsewhere (a WorkerPool) and answers through
// the HttpExchange, whose methods may be called from any thread.
//
// Protection (each an Options field and a `serve` flag, docs/HTTP.md): header and body size
// limits (431 / 413), a header timeout (from a request's first byte, or the connection's start,
// to the end of its headers), a body timeout, an idle timeout between keep-alive requests, one
// Content-Length only (a duplicate is 400), and a cap on connections. At the cap an idle
// keep-alive connection is closed to make room; when none is idle, the new connection is read
// with a short deadline and answered 503 with Retry-After — except the `always_served` paths
// (/health, /metrics), which are served anyway, so the cap never starves probes and scrapes.
//
// Disconnects: while a request is being answered the server keeps reading the connection, so a
// client that closes it (or resets it) is noticed at once: the exchange's OnClientGone callback
// runs and further writes are dropped.
//
// Ownership: the server owns its handlers (copied in by Handle), its io_context and its
// connections; an HttpExchange holds only a weak reference to its connection and may outlive it
// and the server (its calls then do nothing). Thread-safety: Handle() before Start() only; Start,
// port, ReloadTls and Stop from one controlling thread (ReloadTls also while serving).
#ifndef KVSERVE_SERVER_HTTP_HTTP_SERVER_H_
#define KVSERVE_SERVER_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace kvserve::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string query;   // raw, without '?'
  std::string body;
  absl::flat_hash_map<std::string, std::string> headers;  // keys lower-cased
  std::string header(std::string_view name) const;        // "" if absent; name in any case
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

namespace http_internal {
class Connection;
struct ServerState;
}  // namespace http_internal

// The response side of one request. Either Send() once, or StartStream(), Write()s and
// EndStream(). Every method may be called from any thread; the work happens on the connection's
// strand, in call order. Calls after the response is complete, after the client left or after
// the server stopped do nothing.
class HttpExchange {
 public:
  HttpExchange(std::weak_ptr<http_internal::Connection> connection, uint64_t request_number)
      : connection_(std::move(connection)), request_number_(request_number) {}

  void Send(int status, std::string content_type, std::string body, HttpHeaders extra = {});
  // The status and headers of a streamed response (no Content-Length; chunked framing for
  // HTTP/1.1 clients, connection-close framing for HTTP/1.0), with Cache-Control: no-cache.
  void StartStream(int status, std::string content_type);
  void Write(std::string chunk);  // one chunk (empty chunks are skipped)
  void EndStream();               // the last chunk; the response is complete

  // `fn` runs on the strand (queued after earlier calls), unless the connection is gone.
  void Post(std::function<void()> fn);
  // `fn` runs once on the strand if the client goes before the response is complete (closed,
  // reset, timed out, or the server stopped); at once if it is already gone. Replaces an
  // earlier one.
  void OnClientGone(std::function<void()> fn);
  // `fn` runs on the strand each time every queued byte has been handed to the socket; a
  // producer that writes only then never queues more than one chunk ahead of the client.
  void OnWritten(std::function<void()> fn);
  // On the strand only: bytes queued and not yet written (0 after the client left).
  size_t queued_bytes() const;

 private:
  std::weak_ptr<http_internal::Connection> connection_;
  uint64_t request_number_;
};

// Handlers run on the connection's strand and must return quickly.
using HttpHandler = std::function<void(HttpRequest request, std::shared_ptr<HttpExchange> exchange)>;

// PEM text (not file names) of a TLS identity; `client_ca` non-empty requires client
// certificates signed by it (mutual TLS).
struct TlsPem {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;
};

class HttpServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";  // a numeric address ("127.0.0.1", "0.0.0.0", "::")
    int port = 8080;               // 0: the kernel picks a free port (see port())
    int io_threads = 1;            // threads running the event loop
    // Called once per response with the route's registered path ("other" for unknown paths) and
    // the status code, on a strand. Optional.
    std::function<void(const std::string& path, int status)> on_response;
    size_t max_header_bytes = 16 << 10;  // request line and headers: larger is 431
    size_t max_body_bytes = 16 << 20;    // larger is 413
    absl::Duration header_timeout = absl::Seconds(10);  // connection/first byte → headers read
    absl::Duration body_timeout = absl::Seconds(30);    // headers read → body read
    absl::Duration idle_timeout = absl::Seconds(30);    // between keep-alive requests
    int max_connections = 4096;
    // Served even past max_connections (and never evicted as idle while being answered).
    std::vector<std::string> always_served = {"/health", "/metrics"};
    // Non-empty: every connection speaks TLS with this identity.
    TlsPem tls;
  };

  HttpServer();
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register before Start(). `path` is exact ("/v1/completions"); method "GET"/"POST"/...
  // Registering the same method and path twice replaces the handler.
  void Handle(std::string method, std::string path, HttpHandler handler);
  // Binds and starts the event loop. The error names host:port when it cannot bind, and the
  // problem when the TLS identity does not load.
  absl::Status Start(const Options& options);
  int port() const { return port_; }  // the bound port (after Start), else 0
  // A new TLS identity for connections accepted from now on (those open keep theirs). An
  // identity that does not load is an error and the current one stays. Only for a server
  // started with TLS.
  absl::Status ReloadTls(const TlsPem& tls);
  // Stops accepting, closes every connection and joins the event loop's threads. Idempotent.
  void Stop();

  // Connections open now (for tests and figures).
  int open_connections() const;

 private:
  std::shared_ptr<http_internal::ServerState> impl_;
  int port_ = 0;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_HTTP_HTTP_SERVER_H_
