#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "civetweb.h"
#include "server/http/json_writer.h"

namespace kvserve::server {
namespace {

// civetweb reports why mg_start failed (e.g. the port is taken) through log_message, on the
// thread that calls mg_start; Start() points this at its error string for the duration.
// Debian's Abseil has its own string_view; the contract's API uses std::string_view.
absl::string_view AbslView(std::string_view text) { return {text.data(), text.size()}; }

thread_local std::string* start_errors = nullptr;

int LogMessage(const mg_connection* /*conn*/, const char* message) {
  if (start_errors != nullptr) {
    if (!start_errors->empty()) start_errors->append("; ");
    start_errors->append(message);
  }
  return 1;  // handled: keep civetweb from printing to stderr itself
}

// OpenAI-shaped error body, so API clients parse router errors like handler errors.
std::string ErrorJson(std::string_view message, std::string_view type, std::string_view code) {
  return absl::StrCat(R"({"error":{"message":)", JsonQuote(AbslView(message)), R"(,"type":")",
                      AbslView(type), R"(","param":null,"code":")", AbslView(code), "\"}}");
}

class CivetResponseWriter final : public HttpResponseWriter {
 public:
  CivetResponseWriter(mg_connection* conn, bool http11) : conn_(conn), http11_(http11) {}

  void Send(int status, std::string_view content_type, std::string_view body,
            const std::vector<std::pair<std::string, std::string>>& extra_headers) override {
    if (state_ != State::kNone) return;  // one response per request
    state_ = State::kSent;
    status_ = status;
    mg_response_header_start(conn_, status);
    AddHeader("Content-Type", content_type);
    AddHeader("Content-Length", std::to_string(body.size()));
    for (const auto& [name, value] : extra_headers) AddHeader(name, value);
    if (mg_response_header_send(conn_) != 0) {
      client_gone_ = true;
      return;
    }
    if (!body.empty() &&
        mg_write(conn_, body.data(), body.size()) != static_cast<int>(body.size())) {
      client_gone_ = true;
    }
  }

  bool StartStream(int status, std::string_view content_type) override {
    if (state_ != State::kNone) return !client_gone_ && state_ == State::kStreaming;
    state_ = State::kStreaming;
    status_ = status;
    mg_response_header_start(conn_, status);
    AddHeader("Content-Type", content_type);
    AddHeader("Cache-Control", "no-cache");
    // Proxies (nginx) would otherwise buffer the stream and defeat token-by-token delivery.
    AddHeader("X-Accel-Buffering", "no");
    if (http11_) {
      AddHeader("Transfer-Encoding", "chunked");
    } else {
      AddHeader("Connection", "close");
      mg_disable_connection_keep_alive(conn_);
    }
    if (mg_response_header_send(conn_) != 0) client_gone_ = true;
    return !client_gone_;
  }

  bool Write(std::string_view chunk) override {
    if (state_ != State::kStreaming || client_gone_) return false;
    if (chunk.empty()) return true;  // an empty chunk would end a chunked body
    std::string framed;
    std::string_view out = chunk;
    if (http11_) {
      // One mg_write per chunk: size line, data and CRLF leave in one send().
      framed = absl::StrCat(absl::Hex(chunk.size()), "\r\n", AbslView(chunk), "\r\n");
      out = framed;
    }
    if (mg_write(conn_, out.data(), out.size()) != static_cast<int>(out.size())) {
      client_gone_ = true;
    }
    return !client_gone_;
  }

  // Completes the response after the handler returned: the last chunk of a stream, or a 500 if
  // the handler sent nothing. Returns the status the client got.
  int Finish() {
    if (state_ == State::kNone) {
      Send(500, "application/json",
           ErrorJson("the handler produced no response", "server_error", "internal_error"), {});
    } else if (state_ == State::kStreaming && http11_ && !client_gone_) {
      static constexpr char kLastChunk[] = "0\r\n\r\n";
      mg_write(conn_, kLastChunk, sizeof(kLastChunk) - 1);
    }
    return status_;
  }

 private:
  enum class State { kNone, kSent, kStreaming };

  void AddHeader(std::string_view name, std::string_view value) {
    const std::string name_z(name);
    mg_response_header_add(conn_, name_z.c_str(), value.data(), static_cast<int>(value.size()));
  }

  mg_connection* conn_;
  bool http11_;
  State state_ = State::kNone;
  int status_ = 0;
  bool client_gone_ = false;
};

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(AbslView(name)));
  return it == headers.end() ? std::string() : it->second;
}

HttpServer::HttpServer() {
  static std::once_flag init;
  std::call_once(init, [] { mg_init_library(0); });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Handle(std::string method, std::string path, HttpHandler handler) {
  routes_[std::move(path)][std::move(method)] = std::move(handler);
}

absl::Status HttpServer::Start(const Options& options) {
  if (context_ != nullptr) return absl::FailedPreconditionError("the HTTP server is running");
  options_ = options;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  const std::string threads = std::to_string(std::max(1, options.num_threads));
  const char* civet_options[] = {"listening_ports",
                                 address.c_str(),
                                 "num_threads",
                                 threads.c_str(),
                                 "enable_keep_alive",
                                 "yes",
                                 "keep_alive_timeout_ms",
                                 "5000",
                                 "request_timeout_ms",
                                 "30000",
                                 nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.log_message = &LogMessage;
  std::string errors;
  start_errors = &errors;
  context_ = mg_start(&callbacks, this, civet_options);
  start_errors = nullptr;
  if (context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot start the HTTP server on ", address, ": ",
                                               errors.empty() ? "civetweb refused" : errors));
  }
  mg_server_port ports[4];
  const int num_ports = mg_get_server_ports(context_, 4, ports);
  if (num_ports < 1) {
    Stop();
    return absl::InternalError(absl::StrCat("the HTTP server on ", address, " reports no port"));
  }
  port_ = ports[0].port;
  // One catch-all handler: civetweb matches "/" as a prefix of every path; routing is ours.
  mg_set_request_handler(context_, "/", &HttpServer::Dispatch, this);
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (context_ == nullptr) return;
  // civetweb's listener thread notices the stop flag only when its poll() returns, which without
  // traffic takes up to 2 s; a throw-away connection made while mg_stop waits wakes it at once.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    for (int attempt = 0; attempt < 100 && !stopped.load(); ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      PokeListener();
    }
  });
  mg_stop(context_);  // joins the workers, so every handler has returned
  stopped = true;
  waker.join();
  context_ = nullptr;
}

void HttpServer::PokeListener() const {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  if (options_.host.empty() || options_.host == "0.0.0.0" ||
      inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr) != 1) {
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  close(fd);
}

int HttpServer::Dispatch(mg_connection* conn, void* self) {
  static_cast<HttpServer*>(self)->Serve(conn);
  return 1;  // handled (the status itself went out with the response)
}

void HttpServer::Serve(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri != nullptr ? info->local_uri : "";
  request.query = info->query_string != nullptr ? info->query_string : "";
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers[absl::AsciiStrToLower(info->http_headers[i].name)] =
        info->http_headers[i].value;
  }
  const bool http11 = info->http_version != nullptr && std::strcmp(info->http_version, "1.1") == 0;
  CivetResponseWriter writer(conn, http11);

  std::string route_label = "other";
  auto report = [&](int status) {
    if (options_.on_response) options_.on_response(route_label, status);
  };

  auto path_it = routes_.find(request.path);
  if (path_it == routes_.end()) {
    writer.Send(404, "application/json",
                ErrorJson(absl::StrCat("no route for ", request.path), "invalid_request_error",
                          "not_found"),
                {});
    report(writer.Finish());
    return;
  }
  route_label = path_it->first;
  auto method_it = path_it->second.find(request.method);
  if (method_it == path_it->second.end()) {
    std::vector<std::string> allowed;
    for (const auto& [method, handler] : path_it->second) allowed.push_back(method);
    std::sort(allowed.begin(), allowed.end());
    writer.Send(405, "application/json",
                ErrorJson(absl::StrCat(request.method, " is not allowed on ", request.path),
                          "invalid_request_error", "method_not_allowed"),
                {{"Allow", absl::StrJoin(allowed, ", ")}});
    report(writer.Finish());
    return;
  }

  if (info->content_length > static_cast<long long>(options_.max_body_bytes)) {
    mg_disable_connection_keep_alive(conn);  // the unread body must not become the next request
    writer.Send(413, "application/json",
                ErrorJson(absl::StrFormat("the request body (%d bytes) exceeds %d bytes",
                                          info->content_length, options_.max_body_bytes),
                          "invalid_request_error", "request_too_large"),
                {});
    report(writer.Finish());
    return;
  }
  char buffer[16384];
  for (;;) {
    const int n = mg_read(conn, buffer, sizeof(buffer));
    if (n <= 0) break;
    request.body.append(buffer, n);
    if (request.body.size() > options_.max_body_bytes) {  // chunked upload without a length
      mg_disable_connection_keep_alive(conn);
      writer.Send(
          413, "application/json",
          ErrorJson(absl::StrFormat("the request body exceeds %d bytes", options_.max_body_bytes),
                    "invalid_request_error", "request_too_large"),
          {});
      report(writer.Finish());
      return;
    }
  }

  method_it->second(request, writer);
  report(writer.Finish());
}

}  // namespace kvserve::server
