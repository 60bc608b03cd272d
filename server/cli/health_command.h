// `kvserve health`: a gRPC health check client (grpc.health.v1.Health/Check) for container
// HEALTHCHECKs and scripts. Stateless; returns the process exit code.
#ifndef KVSERVE_SERVER_CLI_HEALTH_COMMAND_H_
#define KVSERVE_SERVER_CLI_HEALTH_COMMAND_H_

#include <vector>

namespace kvserve::server {

// Asks --target for the status of --service ("" = the whole server) within --timeout seconds
// (0 = 5 s). Returns 0 if SERVING, 1 otherwise (NOT_SERVING, unknown service, RPC error or bad
// arguments); prints one line on stderr saying which.
int RunHealth(const std::vector<char*>& positional);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_CLI_HEALTH_COMMAND_H_
