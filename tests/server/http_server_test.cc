// HttpServer on loopback, port 0, spoken to with raw HTTP over a socket (no HTTP client library
// whose own framing could hide a bug).
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

// A blocking TCP client with a receive timeout, so a broken server fails the test, not hangs it.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  // True once the server has closed the connection (EOF or reset within `timeout_ms`).
  bool ClosedByServer(int timeout_ms) {
    timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    char c;
    for (;;) {
      ssize_t n = recv(fd_, &c, 1, 0);
      if (n == 0) return true;
      if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
      buffer_.push_back(c);
    }
  }
  void SendAll(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      ASSERT_GT(n, 0);
      sent += n;
    }
  }
  // Reads until `needle` appears in everything read so far, EOF or timeout.
  std::string ReadUntil(const std::string& needle) {
    while (buffer_.find(needle) == std::string::npos) {
      char chunk[4096];
      ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) break;
      buffer_.append(chunk, n);
    }
    return buffer_;
  }
  std::string ReadToEof() {
    for (;;) {
      char chunk[4096];
      ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) break;
      buffer_.append(chunk, n);
    }
    return buffer_;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

int StatusOf(const std::string& response) {
  // "HTTP/1.1 200 OK"
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) return -1;
  return std::stoi(response.substr(9, 3));
}

std::string BodyOf(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServer::Options options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    if (options.max_body_bytes == HttpServer::Options().max_body_bytes) {
      options.max_body_bytes = 1000;
    }
    options.on_response = [this](const std::string& path, int status) {
      absl::MutexLock lock(&mu_);
      responses_.push_back(path + " " + std::to_string(status));
    };
    absl::Status status = server_.Start(options);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_GT(server_.port(), 0);
  }
  std::vector<std::string> responses() {
    absl::MutexLock lock(&mu_);
    return responses_;
  }
  std::string Get(const std::string& path) {
    RawClient client(server_.port());
    client.SendAll("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return client.ReadToEof();
  }

  // Declared before the server, so destroyed after it: the server's io threads call
  // on_response until it has stopped (ThreadSanitizer found ~vector racing with the push_back of
  // a response still being completed when the server was the first member).
  absl::Mutex mu_;
  std::vector<std::string> responses_;
  HttpServer server_;
};

using Exchange = std::shared_ptr<HttpExchange>;

TEST_F(HttpServerTest, RoutesByExactPathAndMethod) {
  server_.Handle("GET", "/hello", [](HttpRequest request, Exchange exchange) {
    exchange->Send(200, "text/plain",
                   "hi " + request.query + " " + request.header("X-Name") + " " + request.method,
                   {{"X-Extra", "yes"}});
  });
  server_.Handle("POST", "/echo", [](HttpRequest request, Exchange exchange) {
    exchange->Send(201, "application/json", request.body);
  });
  StartServer();

  {
    RawClient client(server_.port());
    ASSERT_TRUE(client.connected());
    client.SendAll(
        "GET /hello?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Name: Ann\r\nConnection: close\r\n\r\n");
    std::string response = client.ReadToEof();
    EXPECT_EQ(StatusOf(response), 200) << response;
    EXPECT_EQ(BodyOf(response), "hi a=1&b=2 Ann GET");
    EXPECT_NE(response.find("Content-Type: text/plain"), std::string::npos) << response;
    EXPECT_NE(response.find("Content-Length: 18"), std::string::npos) << response;
    EXPECT_NE(response.find("X-Extra: yes"), std::string::npos) << response;
  }
  {
    RawClient client(server_.port());
    const std::string body = R"({"x": [1, 2, 3]})";
    client.SendAll("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
    std::string response = client.ReadToEof();
    EXPECT_EQ(StatusOf(response), 201) << response;
    EXPECT_EQ(BodyOf(response), body);
  }
  {
    std::string response = Get("/nowhere");
    EXPECT_EQ(StatusOf(response), 404) << response;
    EXPECT_NE(BodyOf(response).find(R"("error")"), std::string::npos) << response;
    EXPECT_NE(response.find("application/json"), std::string::npos) << response;
  }
  {
    RawClient client(server_.port());
    client.SendAll(
        "POST /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    std::string response = client.ReadToEof();
    EXPECT_EQ(StatusOf(response), 405) << response;
    EXPECT_NE(response.find("Allow: GET"), std::string::npos) << response;
  }
  {
    RawClient client(server_.port());
    client.SendAll(
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n");
    std::string response = client.ReadUntil("\r\n\r\n");
    EXPECT_EQ(StatusOf(response), 413) << response;
  }
  {
    // A chunked body past the limit is refused as it arrives.
    RawClient client(server_.port());
    client.SendAll("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   std::string("7d0\r\n") + std::string(2000, 'x') + "\r\n");
    std::string response = client.ReadUntil("\r\n\r\n");
    EXPECT_EQ(StatusOf(response), 413) << response;
  }
  server_.Stop();  // every report has happened
  EXPECT_EQ(responses(), (std::vector<std::string>{"/hello 200", "/echo 201", "other 404",
                                                   "/hello 405", "/echo 413", "/echo 413"}));
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  server_.Handle("GET", "/a", [](HttpRequest, Exchange exchange) {
    exchange->Send(200, "text/plain", "first");
  });
  server_.Handle("GET", "/b", [](HttpRequest, Exchange exchange) {
    exchange->StartStream(200, "text/plain");
    exchange->Write("sec");
    exchange->Write("ond");
    exchange->EndStream();
  });
  StartServer();
  RawClient client(server_.port());
  client.SendAll("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = client.ReadUntil("first");
  EXPECT_EQ(StatusOf(first), 200) << first;
  client.SendAll("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string both = client.ReadUntil("0\r\n\r\n");
  const std::string second = both.substr(both.find("first") + 5);
  EXPECT_EQ(StatusOf(second), 200) << second;
  EXPECT_NE(second.find("Transfer-Encoding: chunked"), std::string::npos) << second;
  EXPECT_EQ(BodyOf(second), "3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n");
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  server_.Handle("GET", "/a", [](HttpRequest request, Exchange exchange) {
    exchange->Send(200, "text/plain", request.query);
  });
  StartServer();
  RawClient client(server_.port());
  client.SendAll("GET /a?1 HTTP/1.1\r\nHost: x\r\n\r\nGET /a?2 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string both = client.ReadUntil("\r\n\r\n2");
  EXPECT_LT(both.find("\r\n\r\n1"), both.find("\r\n\r\n2")) << both;
}

TEST_F(HttpServerTest, StreamArrivesIncrementallyFromAnotherThread) {
  // The stream's second chunk is written from another thread only after the test has
  // *received* the first: a server that buffered the stream would deadlock here.
  absl::Notification first_received;
  std::vector<std::thread> producers;
  server_.Handle("GET", "/stream", [&](HttpRequest, Exchange exchange) {
    exchange->StartStream(200, "text/event-stream");
    exchange->Write("data: one\n\n");
    producers.emplace_back([exchange, &first_received] {
      if (!first_received.WaitForNotificationWithTimeout(absl::Seconds(5))) return;
      exchange->Write("data: two\n\n");
      exchange->EndStream();
    });
  });
  StartServer();
  RawClient client(server_.port());
  client.SendAll("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string part = client.ReadUntil("data: one\n\n\r\n");
  ASSERT_NE(part.find("data: one"), std::string::npos) << part;
  EXPECT_EQ(part.find("data: two"), std::string::npos) << part;
  EXPECT_NE(part.find("Content-Type: text/event-stream"), std::string::npos) << part;
  EXPECT_NE(part.find("Cache-Control: no-cache"), std::string::npos) << part;
  EXPECT_EQ(part.find("Content-Length"), std::string::npos) << part;
  first_received.Notify();
  std::string all = client.ReadToEof();
  EXPECT_EQ(BodyOf(all), "b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n");
  for (std::thread& t : producers) t.join();
}

TEST_F(HttpServerTest, Http10StreamIsFramedByConnectionClose) {
  server_.Handle("GET", "/stream", [](HttpRequest, Exchange exchange) {
    exchange->StartStream(200, "text/plain");
    exchange->Write("ab");
    exchange->Write("cd");
    exchange->EndStream();
  });
  StartServer();
  RawClient client(server_.port());
  client.SendAll("GET /stream HTTP/1.0\r\n\r\n");
  std::string all = client.ReadToEof();
  EXPECT_EQ(StatusOf(all), 200) << all;
  EXPECT_EQ(BodyOf(all), "abcd");
}

TEST_F(HttpServerTest, ClientGoneIsReportedWhileNothingIsWritten) {
  // A request still being answered (nothing written yet, as a non-streamed generation) learns
  // at once that its client closed the connection.
  absl::Notification gone;
  std::vector<Exchange> held;
  server_.Handle("GET", "/slow", [&](HttpRequest, Exchange exchange) {
    exchange->OnClientGone([&gone] { gone.Notify(); });
    held.push_back(exchange);
  });
  StartServer();
  {
    RawClient client(server_.port());
    client.SendAll("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(gone.WaitForNotificationWithTimeout(absl::Seconds(1)));
  // Writes after that do nothing, and the exchange may outlive the server.
  held[0]->Send(200, "text/plain", "late");
  server_.Stop();
  held[0]->Send(200, "text/plain", "later");
}

TEST_F(HttpServerTest, OnWrittenPacesAProducer) {
  // A producer that writes only when the previous chunk has gone out.
  server_.Handle("GET", "/paced", [](HttpRequest, Exchange exchange) {
    exchange->StartStream(200, "text/plain");
    auto count = std::make_shared<int>(0);
    exchange->OnWritten([exchange, count] {
      EXPECT_EQ(exchange->queued_bytes(), 0u);
      if (++*count == 5) {
        exchange->EndStream();
      } else {
        exchange->Write(std::to_string(*count));
      }
    });
    exchange->Write("0");
  });
  StartServer();
  std::string all = Get("/paced");
  EXPECT_EQ(BodyOf(all), "1\r\n0\r\n1\r\n1\r\n1\r\n2\r\n1\r\n3\r\n1\r\n4\r\n0\r\n\r\n");
}

TEST_F(HttpServerTest, HandlerWithoutResponseKeepsTheConnectionUntilStop) {
  server_.Handle("GET", "/silent", [](HttpRequest, Exchange) {});
  StartServer();
  RawClient client(server_.port());
  client.SendAll("GET /silent HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_FALSE(client.ClosedByServer(200));
  server_.Stop();
  EXPECT_TRUE(client.ClosedByServer(1000));
}

TEST_F(HttpServerTest, DuplicateContentLengthIs400) {
  server_.Handle("POST", "/echo", [](HttpRequest request, Exchange exchange) {
    exchange->Send(200, "text/plain", request.body);
  });
  StartServer();
  for (const char* lengths : {"Content-Length: 2\r\nContent-Length: 2\r\n",
                              "Content-Length: 2\r\nContent-Length: 3\r\n",
                              "Content-Length: 2, 2\r\n"}) {
    RawClient client(server_.port());
    client.SendAll(std::string("POST /echo HTTP/1.1\r\nHost: x\r\n") + lengths + "\r\nab");
    std::string response = client.ReadToEof();
    EXPECT_EQ(StatusOf(response), 400) << lengths << response;
  }
}

TEST_F(HttpServerTest, OversizedHeadersAre431) {
  server_.Handle("GET", "/a", [](HttpRequest, Exchange exchange) {
    exchange->Send(200, "text/plain", "a");
  });
  HttpServer::Options options;
  options.max_header_bytes = 1024;
  StartServer(options);
  RawClient client(server_.port());
  client.SendAll("GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'y') + "\r\n\r\n");
  EXPECT_EQ(StatusOf(client.ReadToEof()), 431);
}

TEST_F(HttpServerTest, SlowHeadersAndIdleConnectionsAreClosed) {
  server_.Handle("GET", "/a", [](HttpRequest, Exchange exchange) {
    exchange->Send(200, "text/plain", "a");
  });
  HttpServer::Options options;
  options.header_timeout = absl::Milliseconds(300);
  options.idle_timeout = absl::Milliseconds(300);
  StartServer(options);
  RawClient slow(server_.port());
  slow.SendAll("GET /a HTTP/1.1\r\n");  // and never the rest
  RawClient idle(server_.port());
  idle.SendAll("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusOf(idle.ReadUntil("\r\n\r\na")), 200);
  const absl::Time start = absl::Now();
  EXPECT_TRUE(slow.ClosedByServer(3000));
  EXPECT_TRUE(idle.ClosedByServer(3000));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(HttpServerTest, ConnectionCapAnswers503ButServesHealth) {
  std::vector<Exchange> held;
  server_.Handle("GET", "/hold", [&](HttpRequest, Exchange exchange) {
    held.push_back(std::move(exchange));
  });
  server_.Handle("GET", "/health", [](HttpRequest, Exchange exchange) {
    exchange->Send(200, "application/json", "{}");
  });
  HttpServer::Options options;
  options.max_connections = 3;
  StartServer(options);
  std::vector<std::unique_ptr<RawClient>> busy;
  for (int i = 0; i < 3; ++i) {
    busy.push_back(std::make_unique<RawClient>(server_.port()));
    busy.back()->SendAll("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(server_.open_connections(), 3);
  std::string refused = Get("/hold");
  EXPECT_EQ(StatusOf(refused), 503) << refused;
  EXPECT_NE(refused.find("Retry-After: 1"), std::string::npos) << refused;
  EXPECT_EQ(StatusOf(Get("/health")), 200);
  server_.Stop();
}

TEST_F(HttpServerTest, AnIdleConnectionMakesRoomAtTheCap) {
  server_.Handle("GET", "/a", [](HttpRequest, Exchange exchange) {
    exchange->Send(200, "text/plain", "a");
  });
  HttpServer::Options options;
  options.max_connections = 2;
  StartServer(options);
  RawClient idle1(server_.port()), idle2(server_.port());
  idle1.SendAll("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  idle2.SendAll("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  idle1.ReadUntil("\r\n\r\na");
  idle2.ReadUntil("\r\n\r\na");
  EXPECT_EQ(StatusOf(Get("/a")), 200);
  EXPECT_TRUE(idle1.ClosedByServer(1000));  // the longest idle made room
}

TEST_F(HttpServerTest, ExpectContinueGets100) {
  server_.Handle("POST", "/echo", [](HttpRequest request, Exchange exchange) {
    exchange->Send(200, "text/plain", request.body);
  });
  StartServer();
  RawClient client(server_.port());
  client.SendAll(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_NE(client.ReadUntil("100 Continue\r\n\r\n").find("HTTP/1.1 100 Continue"),
            std::string::npos);
  client.SendAll("abc");
  EXPECT_NE(client.ReadUntil("\r\n\r\nabc").find("200 OK"), std::string::npos);
}

TEST(HttpServerStartTest, BusyPortIsAnErrorNamingTheAddress) {
  HttpServer first;
  HttpServer::Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  ASSERT_TRUE(first.Start(options).ok());
  HttpServer second;
  options.port = first.port();
  absl::Status status = second.Start(options);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << status;
}

TEST(HttpServerStartTest, BadTlsIdentityIsAnError) {
  HttpServer server;
  HttpServer::Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.tls.cert_chain = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
  options.tls.private_key = "nope";
  absl::Status status = server.Start(options);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("TLS certificate"), std::string::npos) << status;
}

}  // namespace
}  // namespace kvserve::server
