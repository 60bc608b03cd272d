// `kvserve health --target HOST:PORT [--service NAME] [--timeout S] [--tls-ca CA.pem ...]`: one
// Health/Check call (over TLS with --tls-ca, see server/cli/tls_files.h).
// The exit code is what container runtimes and shell scripts read: 0 only for SERVING.
#include "server/cli/health_command.h"

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/cli/tls_files.h"

// Shared with `kvserve client` (defined in client_command.cc).
ABSL_DECLARE_FLAG(std::string, target);
ABSL_DECLARE_FLAG(double, timeout);

ABSL_FLAG(std::string, service, "",
          "health: service to check (\"\" = the whole server, or e.g. kvserve.v1.Generation)");

namespace kvserve::server {
namespace {

// Used when --timeout is 0 (its default for `kvserve client`, where 0 means no deadline): a
// health check must always end.
constexpr double kDefaultHealthTimeoutSeconds = 5;

}  // namespace

int RunHealth(const std::vector<char*>& positional) {
  if (!positional.empty()) {
    std::fprintf(stderr, "kvserve health: unexpected argument '%s'\n", positional[0]);
    return 1;
  }
  const std::string target = absl::GetFlag(FLAGS_target);
  const std::string service = absl::GetFlag(FLAGS_service);
  double timeout = absl::GetFlag(FLAGS_timeout);
  if (!(timeout >= 0)) {
    std::fprintf(stderr, "kvserve health: --timeout must be >= 0 seconds\n");
    return 1;
  }
  if (timeout == 0) timeout = kDefaultHealthTimeoutSeconds;

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = ClientChannel(target);
  if (!channel.ok()) {
    std::fprintf(stderr, "kvserve health: %s\n", std::string(channel.status().message()).c_str());
    return 1;
  }
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::microseconds(static_cast<int64_t>(timeout * 1e6)));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  const std::string what = service.empty() ? target : target + " service " + service;
  if (!status.ok()) {
    std::fprintf(stderr, "kvserve health: %s: RPC failed (code %d): %s\n", what.c_str(),
                 static_cast<int>(status.error_code()), status.error_message().c_str());
    return 1;
  }
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  std::fprintf(stderr, "kvserve health: %s: %s\n", what.c_str(), name.c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace kvserve::server
