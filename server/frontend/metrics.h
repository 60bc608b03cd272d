// Metrics: kvserve's Prometheus metrics (names in docs/METRICS.md), served as text at /metrics.
//
// Three kinds of sources:
//  - the engine loop, through the EngineObserver interface, on the engine thread. That path takes
//    no lock: counters are prometheus-cpp Counters (an atomic double), and histograms are
//    AtomicHistograms (atomic bucket counts and sum) because prometheus-cpp 1.0.1's Histogram
//    takes a mutex in Observe(), which a scrape also takes while it copies the buckets.
//  - a load source read at scrape time (EngineLoop::Load(): running/waiting requests, KV pages,
//    prefix-cache counters), so gauges are exact when scraped and cost nothing in between.
//  - the gRPC and HTTP front ends (CountGrpcRequest, CountHttpResponse), on their own threads;
//    these look up their label set in a prometheus-cpp Family (a short mutex, never on the engine
//    thread).
//
// Ownership: owns its registry and histograms. Lifetime: must outlive the EngineLoop it observes
// and the servers that count into it. Thread-safety: every method is thread-safe; OnStep and
// OnRequestFinished are meant for one thread (the engine's) but are safe from any.
#ifndef KVSERVE_SERVER_FRONTEND_METRICS_H_
#define KVSERVE_SERVER_FRONTEND_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/client_metric.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "serving/engine_loop.h"
#include "serving/engine_observer.h"

namespace kvserve::server {

// A cumulative histogram whose Observe is wait-free for one writer and lock-free for many:
// one atomic counter per bucket and an atomic sum. A scrape may see an observation's bucket
// before its sum; the count it reports is the sum of the buckets, so _count always equals the
// +Inf bucket.
class AtomicHistogram {
 public:
  // `upper_bounds` strictly increasing and finite; +Inf is implicit.
  explicit AtomicHistogram(std::vector<double> upper_bounds);
  void Observe(double value);
  prometheus::ClientMetric Collect() const;
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // upper_bounds_.size() + 1 (the +Inf one)
  std::atomic<double> sum_{0.0};
};

class Metrics final : public serving::EngineObserver {
 public:
  Metrics();
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // kvserve_model_info{model,architecture,weight_dtype,kv_cache_dtype} = 1. Call once loaded.
  void SetModelInfo(const std::string& model, const std::string& architecture,
                    const std::string& weight_dtype, const std::string& kv_cache_dtype);
  // Read at every scrape for the gauges and the prefix-cache counters; until set (while the
  // model loads) those series are absent. The source must stay callable until replaced.
  void SetLoadSource(std::function<serving::EngineLoad()> source);

  // kvserve_grpc_requests_total{method,code}: `method` is the RPC's short name ("Generate"),
  // `code` the canonical code name ("OK", "INVALID_ARGUMENT").
  void CountGrpcRequest(std::string_view method, std::string_view code);
  // kvserve_http_requests_total{path,code}.
  void CountHttpResponse(const std::string& path, int status);

  // EngineObserver, on the engine thread.
  void OnStep(const serving::EngineStepStats& step) override;
  void OnRequestFinished(const serving::EngineRequestStats& request) override;

  // Everything, in Prometheus's text exposition format 0.0.4.
  std::string SerializeText() const;
  std::vector<prometheus::MetricFamily> Collect() const;

 private:
  struct NamedHistogram {
    const char* name;
    const char* help;
    AtomicHistogram histogram;
  };
  enum HistogramId {
    kTimeToFirstToken,
    kInterTokenLatency,
    kE2eLatency,
    kQueueTime,
    kRequestPromptTokens,
    kRequestGenerationTokens,
    kStepTokens,
    kStepRequests,
    kStepDuration,
    kNumHistograms,
  };
  AtomicHistogram& histogram(HistogramId id) { return histograms_[id]->histogram; }

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Counter* preemptions_;
  // Indexed by scheduler::FinishReason; created up front so the engine thread never inserts.
  std::array<prometheus::Counter*, scheduler::kNumFinishReasons> finished_by_cause_;
  prometheus::Family<prometheus::Counter>* grpc_requests_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Gauge>* model_info_;
  std::vector<std::unique_ptr<NamedHistogram>> histograms_;

  mutable absl::Mutex source_mu_;
  std::function<serving::EngineLoad()> load_source_ ABSL_GUARDED_BY(source_mu_);
};

// Histogram bucket bounds, exposed for the docs and tests.
std::vector<double> LatencyBucketsSeconds();     // TTFT, end-to-end, queue time
std::vector<double> InterTokenBucketsSeconds();  // inter-token latency, step duration
std::vector<double> TokenCountBuckets();         // prompt / generation lengths, tokens per step
std::vector<double> RequestCountBuckets();       // requests per step

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_METRICS_H_
