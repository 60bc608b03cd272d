// A gRPC server interceptor that counts every finished call in
// kvserve_grpc_requests_total{method,code}: method is the RPC's short name ("Generate", "Chat"),
// code the canonical status code name ("OK", "CANCELLED", ...). As an interceptor it sees every
// RPC of every service without the services knowing about metrics.
//
// Ownership: the factory does not own `metrics`, which must outlive the gRPC server.
// Thread-safety: interceptors run on gRPC threads; Metrics is thread-safe.
#ifndef KVSERVE_SERVER_GRPC_GRPC_METRICS_INTERCEPTOR_H_
#define KVSERVE_SERVER_GRPC_GRPC_METRICS_INTERCEPTOR_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "server/frontend/metrics.h"

namespace kvserve::server {

// For grpc::ServerBuilder::experimental().SetInterceptorCreators(...).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewGrpcMetricsInterceptorFactory(Metrics* metrics);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_GRPC_GRPC_METRICS_INTERCEPTOR_H_
