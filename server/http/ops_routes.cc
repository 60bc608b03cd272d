#include "server/http/ops_routes.h"

namespace kvserve::server {

void AddHealthAndMetricsRoutes(HttpServer& http, const std::atomic<ServingState>& state,
                               const Metrics& metrics) {
  http.Handle("GET", "/health", [&state](HttpRequest, std::shared_ptr<HttpExchange> exchange) {
    switch (state.load()) {
      case ServingState::kServing:
        exchange->Send(200, "application/json", R"({"status":"serving"})");
        return;
      case ServingState::kLoading:
        exchange->Send(503, "application/json", R"({"status":"loading"})", {{"Retry-After", "1"}});
        return;
      case ServingState::kDraining:
        exchange->Send(503, "application/json", R"({"status":"draining"})");
        return;
    }
  });
  http.Handle("GET", "/metrics", [&metrics](HttpRequest, std::shared_ptr<HttpExchange> exchange) {
    exchange->Send(200, "text/plain; version=0.0.4; charset=utf-8", metrics.SerializeText());
  });
}

}  // namespace kvserve::server
