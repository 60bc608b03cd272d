// The operations endpoints on the HTTP server: GET /health (200 serving; 503 loading or draining,
// for load balancers and Kubernetes probes) and GET /metrics (Prometheus text format, every
// metric in docs/METRICS.md).
//
// Ownership: the handlers keep references to `state` and `metrics`, which must outlive the
// server's handlers. Thread-safety: handlers run concurrently; both are read-only.
#ifndef KVSERVE_SERVER_HTTP_OPS_ROUTES_H_
#define KVSERVE_SERVER_HTTP_OPS_ROUTES_H_

#include <atomic>

#include "server/frontend/metrics.h"
#include "server/http/http_server.h"

namespace kvserve::server {

// What GET /health answers.
enum class ServingState { kLoading, kServing, kDraining };

void AddHealthAndMetricsRoutes(HttpServer& http, const std::atomic<ServingState>& state,
                               const Metrics& metrics);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_HTTP_OPS_ROUTES_H_
