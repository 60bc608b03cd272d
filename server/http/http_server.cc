#include "server/http/http_server.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/status.hpp"
#include "boost/beast/http/string_body.hpp"
#include "server/http/json_writer.h"

namespace kvserve::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace http_internal {

// Debian's Abseil has its own string_view; the server's API uses std::string_view.
absl::string_view AbslView(std::string_view text) { return {text.data(), text.size()}; }

// OpenAI-shaped error body, so API clients parse router errors like handler errors.
std::string ErrorJson(std::string_view message, std::string_view type, std::string_view code) {
  return absl::StrCat(R"({"error":{"message":)", JsonQuote(AbslView(message)), R"(,"type":")",
                      AbslView(type), R"(","param":null,"code":")", AbslView(code), "\"}}");
}

// An io_context whose pending handlers can be destroyed on request: Stop() does it after the
// threads have joined, so handlers that own connections release them (see Guard).
class OwnedIoContext : public asio::io_context {
 public:
  using asio::io_context::shutdown;
};

// What outlives the server for as long as any connection does: the io_context (a connection's
// socket needs its services until it is destroyed) and the flag that turns every later
// HttpExchange call into a no-op.
struct Guard {
  OwnedIoContext io;
  absl::Mutex mu;
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

// The connection as HttpExchange sees it. Every method runs on the connection's strand.
class Connection {
 public:
  explicit Connection(std::shared_ptr<Guard> guard) : guard_(std::move(guard)) {}
  virtual ~Connection() = default;

  // Queues `fn` on the strand unless the server stopped.
  virtual void PostToStrand(std::function<void()> fn) = 0;
  virtual void Send(uint64_t request, int status, std::string content_type, std::string body,
                    HttpHeaders extra) = 0;
  virtual void StartStream(uint64_t request, int status, std::string content_type) = 0;
  virtual void Write(uint64_t request, std::string chunk) = 0;
  virtual void EndStream(uint64_t request) = 0;
  virtual void SetOnClientGone(uint64_t request, std::function<void()> fn) = 0;
  virtual void SetOnWritten(uint64_t request, std::function<void()> fn) = 0;
  virtual size_t QueuedBytes(uint64_t request) const = 0;

  Guard& guard() { return *guard_; }

 private:
  const std::shared_ptr<Guard> guard_;
};

// Runs `fn(connection)` on the strand of `weak`'s connection, if it and the server still run.
template <typename Fn>
void OnStrand(const std::weak_ptr<Connection>& weak, Fn fn) {
  std::shared_ptr<Connection> connection = weak.lock();
  if (connection == nullptr) return;
  Connection* raw = connection.get();
  raw->PostToStrand([connection = std::move(connection), fn = std::move(fn)]() mutable {
    fn(*connection);
  });
}

}  // namespace http_internal

using http_internal::Connection;
using http_internal::ErrorJson;
using http_internal::OnStrand;

void HttpExchange::Send(int status, std::string content_type, std::string body,
                        HttpHeaders extra) {
  OnStrand(connection_, [n = request_number_, status, content_type = std::move(content_type),
                         body = std::move(body), extra = std::move(extra)](Connection& c) mutable {
    c.Send(n, status, std::move(content_type), std::move(body), std::move(extra));
  });
}

void HttpExchange::StartStream(int status, std::string content_type) {
  OnStrand(connection_, [n = request_number_, status,
                         content_type = std::move(content_type)](Connection& c) mutable {
    c.StartStream(n, status, std::move(content_type));
  });
}

void HttpExchange::Write(std::string chunk) {
  if (chunk.empty()) return;
  OnStrand(connection_, [n = request_number_, chunk = std::move(chunk)](Connection& c) mutable {
    c.Write(n, std::move(chunk));
  });
}

void HttpExchange::EndStream() {
  OnStrand(connection_, [n = request_number_](Connection& c) { c.EndStream(n); });
}

void HttpExchange::Post(std::function<void()> fn) {
  OnStrand(connection_, [fn = std::move(fn)](Connection&) { fn(); });
}

void HttpExchange::OnClientGone(std::function<void()> fn) {
  std::shared_ptr<Connection> connection = connection_.lock();
  if (connection == nullptr) {
    // The connection is gone (or the server stopped): the client is gone too.
    fn();
    return;
  }
  OnStrand(connection_, [n = request_number_, fn = std::move(fn)](Connection& c) mutable {
    c.SetOnClientGone(n, std::move(fn));
  });
}

void HttpExchange::OnWritten(std::function<void()> fn) {
  OnStrand(connection_, [n = request_number_, fn = std::move(fn)](Connection& c) mutable {
    c.SetOnWritten(n, std::move(fn));
  });
}

size_t HttpExchange::queued_bytes() const {
  std::shared_ptr<Connection> connection = connection_.lock();
  return connection == nullptr ? 0 : connection->QueuedBytes(request_number_);
}

std::string HttpRequest::header(std::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(http_internal::AbslView(name)));
  return it == headers.end() ? std::string() : it->second;
}

namespace {

// Connections accepted past max_connections while no connection is idle: read with this
// deadline, answered (always_served paths) or refused with 503, then closed.
constexpr int kMaxOverflowConnections = 64;
constexpr absl::Duration kOverflowTimeout = absl::Seconds(2);
// After a response that ends the connection, unread request bytes are drained this long so the
// response is not lost to a reset.
constexpr absl::Duration kLingerTimeout = absl::Seconds(2);

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

std::string_view ReasonPhrase(int status) {
  bhttp::status s = bhttp::int_to_status(static_cast<unsigned>(status));
  beast::string_view reason = bhttp::obsolete_reason(s);
  return {reason.data(), reason.size()};
}

absl::StatusOr<std::shared_ptr<asio::ssl::context>> MakeSslContext(const TlsPem& pem) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  beast::error_code ec;
  context->use_certificate_chain(asio::buffer(pem.cert_chain), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("the TLS certificate: ", ec.message()));
  context->use_private_key(asio::buffer(pem.private_key), asio::ssl::context::pem, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("the TLS key: ", ec.message()));
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return absl::InvalidArgumentError("the TLS key does not belong to the certificate");
  }
  if (!pem.client_ca.empty()) {
    context->add_certificate_authority(asio::buffer(pem.client_ca), ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("the TLS client CA: ", ec.message()));
    }
    context->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

}  // namespace

namespace http_internal {

class ConnectionBase;

// The server's shared state. Connections point at it only from handlers that run on the
// io_context, which never run after Stop().
struct ServerState {
  using Options = HttpServer::Options;
  Options options;
  // path → method → handler. Immutable after Start(), so strands read it without a lock.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, HttpHandler>> routes;
  std::shared_ptr<http_internal::Guard> guard = std::make_shared<http_internal::Guard>();
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;

  struct Entry {
    std::weak_ptr<ConnectionBase> connection;
    bool overflow = false;
  };
  mutable absl::Mutex mu;
  std::shared_ptr<asio::ssl::context> ssl ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<uint64_t, Entry> connections ABSL_GUARDED_BY(mu);
  int num_normal ABSL_GUARDED_BY(mu) = 0;
  int num_overflow ABSL_GUARDED_BY(mu) = 0;
  uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  std::atomic<uint64_t> idle_clock{1};

  bool AlwaysServed(const std::string& path) const {
    return std::find(options.always_served.begin(), options.always_served.end(), path) !=
           options.always_served.end();
  }
  void Accept();
  void OnAccept(const asio::strand<asio::io_context::executor_type>& strand, tcp::socket socket);
  // Registers a new connection: its id and whether it is an overflow connection. Evicts an idle
  // connection (or the oldest overflow one) when the cap is reached.
  std::pair<uint64_t, bool> Admit(std::weak_ptr<ConnectionBase> connection);
  void Forget(uint64_t id);
};

// The I/O-independent half of a connection: what the registry needs.
class ConnectionBase : public Connection {
 public:
  using Connection::Connection;
  // 0 unless idle between requests; else when it became idle (Impl::idle_clock).
  std::atomic<uint64_t> idle_since{0};
  // Closes the connection if it is still idle (called on eviction, on the strand).
  virtual void CloseIfIdle() = 0;
  virtual void Close() = 0;
};

}  // namespace http_internal

using http_internal::ConnectionBase;
using http_internal::ServerState;

namespace {

using Strand = asio::strand<asio::io_context::executor_type>;

template <typename Stream>
tcp::socket& Socket(Stream& stream) {
  if constexpr (std::is_same_v<Stream, tcp::socket>) {
    return stream;
  } else {
    return stream.next_layer();
  }
}

// One connection over `Stream` (a TCP socket, or TLS over one).
template <typename Stream>
class Session final : public ConnectionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <typename... StreamArgs>
  Session(ServerState* server, Strand strand, StreamArgs&&... stream_args)
      : ConnectionBase(server->guard),
        server_(server),
        strand_(std::move(strand)),
        stream_(std::forward<StreamArgs>(stream_args)...),
        timer_(strand_) {}

  void Start(uint64_t id, bool overflow, std::shared_ptr<asio::ssl::context> ssl) {
    id_ = id;
    overflow_ = overflow;
    ssl_ = std::move(ssl);
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      ReadNext();
    } else {
      ArmTimer(ReadTimeout(server_->options.header_timeout));
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->ReadNext();
                              });
    }
  }

  // Connection (the HttpExchange side).
  // Inline when called on the strand (the loop is running it, so the server has not stopped).
  void PostToStrand(std::function<void()> fn) override {
    if (strand_.running_in_this_thread()) {
      fn();
      return;
    }
    http_internal::Guard& g = guard();
    absl::MutexLock lock(&g.mu);
    if (g.stopped) return;
    asio::post(strand_, std::move(fn));
  }

  void Send(uint64_t request, int status, std::string content_type, std::string body,
            HttpHeaders extra) override {
    if (!Current(request) || response_ != Response::kNone) return;
    SendResponse(status, content_type, std::move(body), extra);
  }

  void StartStream(uint64_t request, int status, std::string content_type) override {
    if (!Current(request) || response_ != Response::kNone) return;
    response_ = Response::kStreaming;
    status_ = status;
    HttpHeaders headers = {{"Content-Type", std::move(content_type)},
                           {"Cache-Control", "no-cache"},
                           // Proxies (nginx) would otherwise buffer the stream.
                           {"X-Accel-Buffering", "no"}};
    if (http11_) {
      headers.emplace_back("Transfer-Encoding", "chunked");
    } else {
      keep_alive_ = false;  // the end of the body is the end of the connection
    }
    QueueWrite(Head(status, headers));
  }

  void Write(uint64_t request, std::string chunk) override {
    if (!Current(request) || response_ != Response::kStreaming || chunk.empty()) return;
    if (http11_) {
      QueueWrite(absl::StrCat(absl::Hex(chunk.size()), "\r\n"));
      QueueWrite(std::move(chunk));
      QueueWrite("\r\n");
    } else {
      QueueWrite(std::move(chunk));
    }
  }

  void EndStream(uint64_t request) override {
    if (!Current(request) || response_ != Response::kStreaming) return;
    if (http11_) QueueWrite("0\r\n\r\n");
    CompleteResponse();
  }

  void SetOnClientGone(uint64_t request, std::function<void()> fn) override {
    if (request != request_number_) return;  // an earlier request's: it is over
    if (closed_ && response_ != Response::kComplete) {
      fn();
      return;
    }
    if (response_ == Response::kComplete) return;
    on_gone_ = std::move(fn);
  }

  void SetOnWritten(uint64_t request, std::function<void()> fn) override {
    if (!Current(request) || response_ == Response::kComplete) return;
    on_written_ = std::move(fn);
  }

  size_t QueuedBytes(uint64_t request) const override {
    return Current(request) ? queued_bytes_ : 0;
  }

  // ConnectionBase.
  void CloseIfIdle() override {
    if (phase_ == Phase::kIdle) Close();
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    idle_since = 0;
    CancelTimer();
    beast::error_code ec;
    Socket(stream_).shutdown(tcp::socket::shutdown_both, ec);
    Socket(stream_).close(ec);
    out_.clear();
    queued_bytes_ = 0;
    on_written_ = nullptr;
    if (phase_ == Phase::kBusy && response_ != Response::kComplete) {
      std::function<void()> gone = std::move(on_gone_);
      on_gone_ = nullptr;
      if (gone) gone();
    }
    on_gone_ = nullptr;
    server_->Forget(id_);
  }

 private:
  enum class Phase { kIdle, kHeader, kBody, kBusy, kClosing };
  enum class Response { kNone, kStreaming, kComplete };

  bool Current(uint64_t request) const {
    return !closed_ && phase_ == Phase::kBusy && request == request_number_;
  }

  absl::Duration ReadTimeout(absl::Duration configured) const {
    return overflow_ ? std::min(configured, kOverflowTimeout) : configured;
  }

  void ArmTimer(absl::Duration d) {
    const uint64_t generation = ++timer_generation_;
    timer_.expires_after(ToChrono(d));
    timer_.async_wait([self = this->shared_from_this(), generation](beast::error_code ec) {
      if (ec || generation != self->timer_generation_) return;
      self->Close();  // a read took too long: slow or idle client
    });
  }
  void CancelTimer() {
    ++timer_generation_;
    timer_.cancel();
  }

  // Between requests: the next one's first byte (or what is already buffered).
  void ReadNext() {
    phase_ = Phase::kIdle;
    if (buffer_.size() > 0) {
      if (!reading_) StartHeader();
      return;
    }
    if (!overflow_) idle_since = server_->idle_clock.fetch_add(1);
    // A fresh connection owes its first request within the header timeout; a kept-alive one
    // may idle longer.
    ArmTimer(ReadTimeout(requests_ == 0 ? server_->options.header_timeout
                                        : server_->options.idle_timeout));
    if (!reading_) ReadSome();
  }

  // One read into the buffer: the next request's first bytes while idle, or (while a request
  // is answered) pipelined bytes, or the client's end of the connection.
  void ReadSome() {
    reading_ = true;
    stream_.async_read_some(
        buffer_.prepare(4096),
        [self = this->shared_from_this()](beast::error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(beast::error_code ec, size_t n) {
    reading_ = false;
    if (closed_) return;
    if (phase_ == Phase::kClosing) {  // lingering: drain until the client finishes
      if (ec) return Close();
      buffer_.clear();
      return DrainLinger();
    }
    if (ec) return Close();  // in kBusy: the client left (Close runs OnClientGone)
    buffer_.commit(n);
    // Pipelined bytes while a request is answered: they wait in the buffer (and the connection
    // is no longer watched) until the answer is complete.
    if (phase_ == Phase::kBusy) return;
    StartHeader();
  }

  void StartHeader() {
    phase_ = Phase::kHeader;
    route_label_ = "other";
    idle_since = 0;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(server_->options.max_header_bytes, UINT32_MAX)));
    // A Content-Length over the limit is answered below, with the route known; the limit itself
    // applies to the body (a chunked one included) once the headers are read.
    parser_->body_limit(boost::none);
    ArmTimer(ReadTimeout(server_->options.header_timeout));
    reading_ = true;
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               self->OnHeader(ec);
                             });
  }

  // A response to a request that could not be read; the connection closes after it.
  void Refuse(int status, std::string_view message, std::string_view code,
              HttpHeaders extra = {}) {
    phase_ = Phase::kBusy;
    ++request_number_;
    response_ = Response::kNone;
    keep_alive_ = false;
    SendResponse(status, "application/json",
                 ErrorJson(message, "invalid_request_error", code), extra);
  }

  void OnHeader(beast::error_code ec) {
    reading_ = false;
    if (closed_) return;
    http11_ = true;
    if (ec == bhttp::error::header_limit) {
      return Refuse(431,
                    absl::StrFormat("the request headers exceed %d bytes",
                                    server_->options.max_header_bytes),
                    "request_header_fields_too_large");
    }
    if (ec == bhttp::error::bad_content_length || ec == bhttp::error::multiple_content_length) {
      return Refuse(400, "conflicting or malformed Content-Length headers",
                    "bad_content_length");
    }
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::ssl::error::stream_truncated) {
      return Close();
    }
    if (ec) return Refuse(400, absl::StrCat("malformed request: ", ec.message()), "bad_request");
    const auto& message = parser_->get();
    http11_ = message.version() >= 11;
    keep_alive_ = message.keep_alive();
    // One Content-Length only: a repeated one (even with the same value) or a list is how
    // request smuggling hides a second request.
    int lengths = 0;
    for (const auto& field : message) {
      if (field.name() == bhttp::field::content_length) {
        ++lengths;
        if (field.value().find(',') != beast::string_view::npos) ++lengths;
      }
    }
    if (lengths > 1) {
      return Refuse(400, "more than one Content-Length header", "duplicate_content_length");
    }
    const beast::string_view target = message.target();
    const size_t question = target.find('?');
    std::string path(target.substr(0, question));
    if (server_->routes.contains(path)) route_label_ = path;
    if (overflow_ && !server_->AlwaysServed(path)) {
      return Refuse(503, "the server has too many connections; retry shortly", "overloaded",
                    {{"Retry-After", "1"}});
    }
    if (const auto length = parser_->content_length();
        length && *length > server_->options.max_body_bytes) {
      return Refuse(413,
                    absl::StrFormat("the request body (%d bytes) exceeds %d bytes", *length,
                                    server_->options.max_body_bytes),
                    "request_too_large");
    }
    if (beast::iequals(message[bhttp::field::expect], "100-continue") && !parser_->is_done()) {
      QueueWrite("HTTP/1.1 100 Continue\r\n\r\n");
    }
    parser_->body_limit(server_->options.max_body_bytes);
    phase_ = Phase::kBody;
    ArmTimer(server_->options.body_timeout);
    reading_ = true;
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->OnBody(ec);
                      });
  }

  void OnBody(beast::error_code ec) {
    reading_ = false;
    if (closed_) return;
    if (ec == bhttp::error::body_limit) {
      return Refuse(413,
                    absl::StrFormat("the request body exceeds %d bytes",
                                    server_->options.max_body_bytes),
                    "request_too_large");
    }
    if (ec) return Close();
    CancelTimer();
    Dispatch(parser_->release());
  }

  void Dispatch(bhttp::request<bhttp::string_body> message) {
    phase_ = Phase::kBusy;
    ++request_number_;
    ++requests_;
    response_ = Response::kNone;
    if (overflow_) keep_alive_ = false;  // served past the cap: one request only
    HttpRequest request;
    request.method = std::string(message.method_string());
    const beast::string_view target = message.target();
    const size_t question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question != beast::string_view::npos) request.query = std::string(target.substr(question + 1));
    for (const auto& field : message) {
      std::string name = absl::AsciiStrToLower(
          absl::string_view(field.name_string().data(), field.name_string().size()));
      std::string value(field.value());
      auto [it, inserted] = request.headers.try_emplace(std::move(name), value);
      if (!inserted) absl::StrAppend(&it->second, ", ", value);
    }
    request.body = std::move(message.body());

    // Watch the connection while the request is answered: a client that leaves is noticed at
    // once (pipelined bytes already buffered are left for later).
    if (!reading_ && buffer_.size() == 0) ReadSome();

    auto path_it = server_->routes.find(request.path);
    if (path_it == server_->routes.end()) {
      SendResponse(404, "application/json",
                   ErrorJson(absl::StrCat("no route for ", request.path),
                             "invalid_request_error", "not_found"),
                   {});
      return;
    }
    route_label_ = path_it->first;
    auto method_it = path_it->second.find(request.method);
    if (method_it == path_it->second.end()) {
      std::vector<std::string> allowed;
      for (const auto& [method, handler] : path_it->second) allowed.push_back(method);
      std::sort(allowed.begin(), allowed.end());
      SendResponse(405, "application/json",
                   ErrorJson(absl::StrCat(request.method, " is not allowed on ", request.path),
                             "invalid_request_error", "method_not_allowed"),
                   {{"Allow", absl::StrJoin(allowed, ", ")}});
      return;
    }
    auto exchange = std::make_shared<HttpExchange>(
        std::weak_ptr<Connection>(this->shared_from_this()), request_number_);
    method_it->second(std::move(request), std::move(exchange));
  }

  std::string Head(int status, const HttpHeaders& headers) const {
    std::string head = absl::StrCat("HTTP/1.1 ", status, " ",
                                    http_internal::AbslView(ReasonPhrase(status)), "\r\n");
    for (const auto& [name, value] : headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
    if (!keep_alive_) {
      head += "Connection: close\r\n";
    } else if (!http11_) {
      head += "Connection: keep-alive\r\n";
    }
    head += "\r\n";
    return head;
  }

  void SendResponse(int status, std::string_view content_type, std::string body,
                    const HttpHeaders& extra) {
    status_ = status;
    HttpHeaders headers = {{"Content-Type", std::string(content_type)},
                           {"Content-Length", std::to_string(body.size())}};
    headers.insert(headers.end(), extra.begin(), extra.end());
    QueueWrite(Head(status, headers));
    QueueWrite(std::move(body));
    CompleteResponse();
  }

  // Every byte of the response is queued.
  void CompleteResponse() {
    response_ = Response::kComplete;
    on_written_ = nullptr;
    on_gone_ = nullptr;
    if (server_->options.on_response) server_->options.on_response(route_label_, status_);
    if (!writing_) ResponseWritten();
  }

  void ResponseWritten() {
    if (!keep_alive_) return Linger();
    ReadNext();
  }

  // The server ends the connection: no more sends, then drain what the client still sends
  // (a refused body) for a moment, so the response is not lost to a reset.
  void Linger() {
    phase_ = Phase::kClosing;
    beast::error_code ec;
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      stream_.shutdown(tcp::socket::shutdown_send, ec);
    } else {
      return Close();  // TLS: the peer's close_notify is not worth waiting for
    }
    ArmTimer(kLingerTimeout);
    buffer_.clear();
    if (!reading_) DrainLinger();
  }
  void DrainLinger() {
    reading_ = true;
    stream_.async_read_some(buffer_.prepare(16384),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->reading_ = false;
                              if (ec || self->closed_) return self->Close();
                              self->buffer_.clear();
                              self->DrainLinger();
                            });
  }

  void QueueWrite(std::string data) {
    if (closed_ || data.empty()) return;
    queued_bytes_ += data.size();
    out_.push_back(std::move(data));
    if (!writing_) WriteQueued();
  }

  void WriteQueued() {
    writing_ = true;
    in_flight_.clear();
    while (!out_.empty()) {
      in_flight_.push_back(std::move(out_.front()));
      out_.pop_front();
    }
    buffers_.clear();
    for (const std::string& s : in_flight_) buffers_.emplace_back(s.data(), s.size());
    asio::async_write(stream_, buffers_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                        self->OnWrite(ec, n);
                      });
  }

  void OnWrite(beast::error_code ec, size_t n) {
    writing_ = false;
    in_flight_.clear();
    if (closed_) return;
    if (ec) return Close();  // the client is gone
    queued_bytes_ -= std::min(queued_bytes_, n);
    if (!out_.empty()) return WriteQueued();
    if (response_ == Response::kComplete) return ResponseWritten();
    if (on_written_) {
      std::function<void()> fn = on_written_;  // may replace itself
      fn();
    }
  }

  ServerState* const server_;
  const Strand strand_;
  Stream stream_;
  asio::steady_timer timer_;
  std::shared_ptr<asio::ssl::context> ssl_;  // the identity this connection was accepted with
  uint64_t id_ = 0;
  bool overflow_ = false;

  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Phase phase_ = Phase::kIdle;
  bool reading_ = false;
  bool closed_ = false;
  uint64_t timer_generation_ = 0;
  uint64_t requests_ = 0;

  // The request being answered.
  uint64_t request_number_ = 0;
  Response response_ = Response::kNone;
  bool http11_ = true;
  bool keep_alive_ = true;
  int status_ = 0;
  std::string route_label_ = "other";
  std::function<void()> on_gone_;
  std::function<void()> on_written_;

  std::deque<std::string> out_;
  std::vector<std::string> in_flight_;
  std::vector<asio::const_buffer> buffers_;
  bool writing_ = false;
  size_t queued_bytes_ = 0;
};

}  // namespace

void ServerState::Accept() {
  Strand strand = asio::make_strand(guard->io);
  acceptor->async_accept(strand, [this, strand](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) OnAccept(strand, std::move(socket));
    Accept();
  });
}

void ServerState::OnAccept(const Strand& strand, tcp::socket socket) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);  // stream chunks leave at once
  std::shared_ptr<asio::ssl::context> context;
  {
    absl::MutexLock lock(&mu);
    context = ssl;
  }
  if (context != nullptr) {
    auto session =
        std::make_shared<Session<asio::ssl::stream<tcp::socket>>>(this, strand, std::move(socket),
                                                                  *context);
    const std::pair<uint64_t, bool> admitted = Admit(session);
    session->PostToStrand([session, admitted, context] {
      session->Start(admitted.first, admitted.second, context);
    });
  } else {
    auto session = std::make_shared<Session<tcp::socket>>(this, strand, std::move(socket));
    const std::pair<uint64_t, bool> admitted = Admit(session);
    session->PostToStrand([session, admitted] {
      session->Start(admitted.first, admitted.second, nullptr);
    });
  }
}

std::pair<uint64_t, bool> ServerState::Admit(std::weak_ptr<ConnectionBase> connection) {
  std::vector<std::shared_ptr<ConnectionBase>> evict_idle, evict_overflow;
  bool overflow = false;
  uint64_t id;
  {
    absl::MutexLock lock(&mu);
    id = next_id++;
    if (num_normal >= options.max_connections) {
      // Make room by closing the connection idle the longest.
      std::shared_ptr<ConnectionBase> oldest;
      uint64_t oldest_since = 0;
      for (auto& [other_id, entry] : connections) {
        if (entry.overflow) continue;
        std::shared_ptr<ConnectionBase> c = entry.connection.lock();
        if (c == nullptr) continue;
        const uint64_t since = c->idle_since.load();
        if (since != 0 && (oldest == nullptr || since < oldest_since)) {
          oldest = std::move(c);
          oldest_since = since;
        }
      }
      if (oldest != nullptr && oldest->idle_since.exchange(0) != 0) {
        evict_idle.push_back(std::move(oldest));
      } else {
        overflow = true;
      }
    }
    if (overflow && num_overflow >= kMaxOverflowConnections) {
      uint64_t oldest_id = UINT64_MAX;
      for (auto& [other_id, entry] : connections) {
        if (entry.overflow && other_id < oldest_id) oldest_id = other_id;
      }
      if (auto it = connections.find(oldest_id); it != connections.end()) {
        if (auto c = it->second.connection.lock()) evict_overflow.push_back(std::move(c));
      }
    }
    connections[id] = Entry{std::move(connection), overflow};
    ++(overflow ? num_overflow : num_normal);
  }
  // On their strands: an idle one only if it is still idle (a request may have begun meanwhile).
  for (std::shared_ptr<ConnectionBase>& c : evict_idle) c->PostToStrand([c] { c->CloseIfIdle(); });
  for (std::shared_ptr<ConnectionBase>& c : evict_overflow) c->PostToStrand([c] { c->Close(); });
  return {id, overflow};
}

void ServerState::Forget(uint64_t id) {
  absl::MutexLock lock(&mu);
  auto it = connections.find(id);
  if (it == connections.end()) return;
  --(it->second.overflow ? num_overflow : num_normal);
  connections.erase(it);
}

HttpServer::HttpServer() : impl_(std::make_shared<ServerState>()) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Handle(std::string method, std::string path, HttpHandler handler) {
  impl_->routes[std::move(path)][std::move(method)] = std::move(handler);
}

int HttpServer::open_connections() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->num_normal + impl_->num_overflow;
}

absl::Status HttpServer::ReloadTls(const TlsPem& tls) {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->ssl == nullptr) {
      return absl::FailedPreconditionError("the HTTP server was started without TLS");
    }
  }
  absl::StatusOr<std::shared_ptr<asio::ssl::context>> context = MakeSslContext(tls);
  if (!context.ok()) return context.status();
  absl::MutexLock lock(&impl_->mu);
  impl_->ssl = *std::move(context);
  return absl::OkStatus();
}

absl::Status HttpServer::Start(const Options& options) {
  if (impl_->acceptor.has_value()) {
    return absl::FailedPreconditionError("the HTTP server is running");
  }
  impl_->options = options;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  if (!options.tls.cert_chain.empty() || !options.tls.private_key.empty()) {
    absl::StatusOr<std::shared_ptr<asio::ssl::context>> context = MakeSslContext(options.tls);
    if (!context.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot start the HTTP server on ", address,
                                                     ": ", context.status().message()));
    }
    absl::MutexLock lock(&impl_->mu);
    impl_->ssl = *std::move(context);
  }
  beast::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(options.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot start the HTTP server on ", address, ": '", options.host,
                     "' is not a numeric IP address"));
  }
  const tcp::endpoint endpoint(ip, static_cast<uint16_t>(options.port));
  tcp::acceptor acceptor(asio::make_strand(impl_->guard->io));
  auto fail = [&](std::string_view what) {
    return absl::UnavailableError(absl::StrCat("cannot start the HTTP server on ", address, ": ",
                                               http_internal::AbslView(what), ": ",
                                               ec.message()));
  };
  if (acceptor.open(endpoint.protocol(), ec); ec) return fail("socket");
  if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec); ec) return fail("option");
  if (acceptor.bind(endpoint, ec); ec) return fail("bind");
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
  port_ = acceptor.local_endpoint().port();
  impl_->acceptor.emplace(std::move(acceptor));
  impl_->Accept();
  for (int i = 0; i < std::max(1, options.io_threads); ++i) {
    impl_->threads.emplace_back([io = &impl_->guard->io] { io->run(); });
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  ServerState& impl = *impl_;
  if (!impl.acceptor.has_value()) return;
  // Close the listener and every connection on their own strands (connections run their
  // OnClientGone callbacks), give that a moment, then stop the loop.
  asio::post(impl.acceptor->get_executor(), [&impl] {
    beast::error_code ec;
    impl.acceptor->close(ec);
  });
  std::vector<std::shared_ptr<ConnectionBase>> open;
  {
    absl::MutexLock lock(&impl.mu);
    for (auto& [id, entry] : impl.connections) {
      if (auto c = entry.connection.lock()) open.push_back(std::move(c));
    }
  }
  for (std::shared_ptr<ConnectionBase>& c : open) c->PostToStrand([c] { c->Close(); });
  open.clear();
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (open_connections() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  {
    absl::MutexLock lock(&impl.guard->mu);
    impl.guard->stopped = true;
  }
  impl.guard->io.stop();
  for (std::thread& t : impl.threads) t.join();
  impl.threads.clear();
  impl.acceptor.reset();
  // Destroys the handlers still queued; the connections they own go with them.
  impl.guard->io.shutdown();
  port_ = 0;
}

}  // namespace kvserve::server
