// `kvserve serve` and `kvserve client`: the gRPC server and its command-line client. Each
// returns the process exit code.
#ifndef KVSERVE_SERVER_CLI_SERVE_COMMAND_H_
#define KVSERVE_SERVER_CLI_SERVE_COMMAND_H_

#include <vector>

namespace kvserve::server {

// Serves kvserve.v1.Generation, grpc.health.v1.Health and server reflection until SIGTERM or
// SIGINT, then drains (see --drain-timeout) and returns 0.
int RunServe(const std::vector<char*>& positional);

// Streams one generation from a running server to stdout (text as it arrives, or JSON lines
// with --json).
int RunClient(const std::vector<char*>& positional);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_CLI_SERVE_COMMAND_H_
