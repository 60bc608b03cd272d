#include "server/http/ops_routes.h"

namespace kvserve::server {

void AddHealthAndMetricsRoutes(HttpServer& http, const std::atomic<ServingState>& state,
                               const Metrics& metrics) {
  http.Handle("GET", "/health", [&state](const HttpRequest&, HttpResponseWriter& writer) {
    switch (state.load()) {
      case ServingState::kServing:
        writer.Send(200, "application/json", R"({"status":"serving"})");
        return;
      case ServingState::kLoading:
        writer.Send(503, "application/json", R"({"status":"loading"})");
        return;
      case ServingState::kDraining:
        writer.Send(503, "application/json", R"({"status":"draining"})");
        return;
    }
  });
  http.Handle("GET", "/metrics", [&metrics](const HttpRequest&, HttpResponseWriter& writer) {
    writer.Send(200, "text/plain; version=0.0.4; charset=utf-8", metrics.SerializeText());
  });
}

}  // namespace kvserve::server
