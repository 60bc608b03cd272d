// HttpServer on loopback, port 0, spoken to with raw HTTP over a socket (no HTTP client library
// whose own framing could hide a bug).
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
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
  void StartServer() {
    HttpServer::Options options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.num_threads = 4;
    options.max_body_bytes = 1000;
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

  HttpServer server_;
  absl::Mutex mu_;
  std::vector<std::string> responses_;
};

TEST_F(HttpServerTest, RoutesByExactPathAndMethod) {
  server_.Handle("GET", "/hello", [](const HttpRequest& request, HttpResponseWriter& writer) {
    writer.Send(200, "text/plain",
                "hi " + request.query + " " + request.header("X-Name") + " " + request.method,
                {{"X-Extra", "yes"}});
  });
  server_.Handle("POST", "/echo", [](const HttpRequest& request, HttpResponseWriter& writer) {
    writer.Send(201, "application/json", request.body);
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
    RawClient client(server_.port());
    client.SendAll("GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::string response = client.ReadToEof();
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
  server_.Stop();  // the last report happens after its response went out
  EXPECT_EQ(responses(), (std::vector<std::string>{"/hello 200", "/echo 201", "other 404",
                                                   "/hello 405", "/echo 413"}));
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  server_.Handle("GET", "/a", [](const HttpRequest&, HttpResponseWriter& writer) {
    writer.Send(200, "text/plain", "first");
  });
  server_.Handle("GET", "/b", [](const HttpRequest&, HttpResponseWriter& writer) {
    ASSERT_TRUE(writer.StartStream(200, "text/plain"));
    writer.Write("sec");
    writer.Write("ond");
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

TEST_F(HttpServerTest, StreamArrivesIncrementally) {
  // The handler writes one chunk, then waits until the test has *received* it before writing the
  // next: a server that buffered the stream until the handler returned would deadlock here (and
  // the test would fail on its timeouts).
  absl::Notification first_received;
  server_.Handle("GET", "/stream", [&](const HttpRequest&, HttpResponseWriter& writer) {
    ASSERT_TRUE(writer.StartStream(200, "text/event-stream"));
    EXPECT_TRUE(writer.Write("data: one\n\n"));
    if (!first_received.WaitForNotificationWithTimeout(absl::Seconds(5))) return;
    EXPECT_TRUE(writer.Write("data: two\n\n"));
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
}

TEST_F(HttpServerTest, Http10StreamIsFramedByConnectionClose) {
  server_.Handle("GET", "/stream", [](const HttpRequest&, HttpResponseWriter& writer) {
    ASSERT_TRUE(writer.StartStream(200, "text/plain"));
    writer.Write("ab");
    writer.Write("cd");
  });
  StartServer();
  RawClient client(server_.port());
  client.SendAll("GET /stream HTTP/1.0\r\n\r\n");
  std::string all = client.ReadToEof();
  EXPECT_EQ(StatusOf(all), 200) << all;
  EXPECT_EQ(BodyOf(all), "abcd");
}

TEST_F(HttpServerTest, WriteFailsAfterClientDisconnects) {
  absl::Notification started, client_closed, handler_done;
  std::atomic<int> writes_before_failure{-1};
  server_.Handle("GET", "/stream", [&](const HttpRequest&, HttpResponseWriter& writer) {
    ASSERT_TRUE(writer.StartStream(200, "text/event-stream"));
    writer.Write("data: hello\n\n");
    started.Notify();
    client_closed.WaitForNotificationWithTimeout(absl::Seconds(5));
    const std::string chunk(1024, 'x');
    // The first writes may land in kernel buffers; a closed peer answers with RST, after which
    // send() fails. 10000 × 1 KiB is far more than any socket buffer.
    for (int i = 0; i < 10000; ++i) {
      if (!writer.Write(chunk)) {
        writes_before_failure = i;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    handler_done.Notify();
  });
  StartServer();
  {
    RawClient client(server_.port());
    client.SendAll("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(5)));
    client.ReadUntil("hello");
  }  // closed
  client_closed.Notify();
  ASSERT_TRUE(handler_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(writes_before_failure.load(), 0) << "Write() never reported the closed client";
}

TEST_F(HttpServerTest, HandlerWithoutResponseGets500) {
  server_.Handle("GET", "/silent", [](const HttpRequest&, HttpResponseWriter&) {});
  StartServer();
  RawClient client(server_.port());
  client.SendAll("GET /silent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(client.ReadToEof()), 500);
}

TEST(HttpServerStartTest, BusyPortIsAnErrorNamingTheAddress) {
  HttpServer first;
  HttpServer::Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.num_threads = 1;
  ASSERT_TRUE(first.Start(options).ok());
  HttpServer second;
  options.port = first.port();
  absl::Status status = second.Start(options);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << status;
}

TEST(HttpServerStartTest, StopWaitsForAStreamingHandler) {
  HttpServer server;
  std::atomic<bool> handler_returned{false};
  absl::Notification started;
  server.Handle("GET", "/slow", [&](const HttpRequest&, HttpResponseWriter& writer) {
    writer.StartStream(200, "text/plain");
    started.Notify();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    writer.Write("done");
    handler_returned = true;
  });
  HttpServer::Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  ASSERT_TRUE(server.Start(options).ok());
  RawClient client(server.port());
  client.SendAll("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(5)));
  server.Stop();
  EXPECT_TRUE(handler_returned.load());
}

}  // namespace
}  // namespace kvserve::server
