#include "server/frontend/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "prometheus/text_serializer.h"

namespace kvserve::server {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Single(const char* name, const char* help, MetricType type, double value) {
  MetricFamily family{name, help, type, {}};
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

std::vector<double> LatencyBucketsSeconds() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1,   1.5,
          2,     2.5,   5,    7.5,  10,   15,   20,   30,  45,   60,  120,  300, 600};
}
std::vector<double> InterTokenBucketsSeconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
          0.1,    0.15,  0.2,    0.3,   0.4,  0.5,   0.75, 1,     2.5,  5,    10,   20};
}
std::vector<double> TokenCountBuckets() {
  return {1,    2,    4,    8,    16,    32,    64,    128,    256,   512,
          1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144};
}
std::vector<double> RequestCountBuckets() { return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}; }

AtomicHistogram::AtomicHistogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i].store(0);
}

void AtomicHistogram::Observe(double value) {
  // Prometheus buckets are upper-inclusive: the first bound >= value.
  const size_t bucket =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);  // a CAS loop; uncontended on one writer
}

ClientMetric AtomicHistogram::Collect() const {
  ClientMetric metric;
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound =
        i < upper_bounds_.size() ? upper_bounds_[i] : std::numeric_limits<double>::infinity();
    metric.histogram.bucket.push_back(bucket);
  }
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum_.load(std::memory_order_relaxed);
  return metric;
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  prompt_tokens_ =
      &BuildCounter()
           .Name("kvserve_prompt_tokens_total")
           .Help("Prompt tokens of requests whose prefill completed (cached included).")
           .Register(*registry_)
           .Add({});
  generation_tokens_ = &BuildCounter()
                            .Name("kvserve_generation_tokens_total")
                            .Help("Tokens generated.")
                            .Register(*registry_)
                            .Add({});
  preemptions_ = &BuildCounter()
                      .Name("kvserve_preemptions_total")
                      .Help("Requests preempted (KV pages taken back, to be recomputed).")
                      .Register(*registry_)
                      .Add({});
  auto& finished = BuildCounter()
                       .Name("kvserve_requests_finished_total")
                       .Help("Requests finished, by finish reason.")
                       .Register(*registry_);
  for (int cause = 0; cause < static_cast<int>(finished_by_cause_.size()); ++cause) {
    finished_by_cause_[cause] = &finished.Add(
        {{"finish_reason",
          std::string(scheduler::FinishReasonName(static_cast<scheduler::FinishReason>(cause)))}});
  }
  grpc_requests_ = &BuildCounter()
                        .Name("kvserve_grpc_requests_total")
                        .Help("gRPC calls finished, by method and status code.")
                        .Register(*registry_);
  http_requests_ = &BuildCounter()
                        .Name("kvserve_http_requests_total")
                        .Help("HTTP responses, by route (\"other\" for unknown paths) and status.")
                        .Register(*registry_);
  model_info_ = &BuildGauge()
                     .Name("kvserve_model_info")
                     .Help("The served model; always 1.")
                     .Register(*registry_);

  auto add = [this](const char* name, const char* help, std::vector<double> bounds) {
    // Built in place: atomics do not move.
    histograms_.emplace_back(new NamedHistogram{name, help, AtomicHistogram(std::move(bounds))});
  };
  // In HistogramId order.
  add("kvserve_time_to_first_token_seconds", "Time from arrival to the first generated token.",
      LatencyBucketsSeconds());
  add("kvserve_inter_token_latency_seconds", "Time between two consecutive tokens of one request.",
      InterTokenBucketsSeconds());
  add("kvserve_e2e_request_latency_seconds", "Time from arrival to the final output.",
      LatencyBucketsSeconds());
  add("kvserve_request_queue_time_seconds", "Time from arrival to first being scheduled.",
      LatencyBucketsSeconds());
  add("kvserve_request_prompt_tokens", "Prompt length of finished requests.", TokenCountBuckets());
  add("kvserve_request_generation_tokens", "Generated tokens of finished requests.",
      TokenCountBuckets());
  add("kvserve_step_tokens", "Tokens computed in one engine step (the batch).",
      TokenCountBuckets());
  add("kvserve_step_requests", "Requests in one engine step.", RequestCountBuckets());
  add("kvserve_step_duration_seconds", "Wall time of one engine step (schedule, forward, sample).",
      InterTokenBucketsSeconds());
}

Metrics::~Metrics() = default;

void Metrics::SetModelInfo(const std::string& model, const std::string& architecture,
                           const std::string& weight_dtype, const std::string& kv_cache_dtype) {
  model_info_
      ->Add({{"model", model},
             {"architecture", architecture},
             {"weight_dtype", weight_dtype},
             {"kv_cache_dtype", kv_cache_dtype}})
      .Set(1);
}

void Metrics::SetLoadSource(std::function<serving::EngineLoad()> source) {
  absl::MutexLock lock(&source_mu_);
  load_source_ = std::move(source);
}

void Metrics::CountGrpcRequest(std::string_view method, std::string_view code) {
  grpc_requests_->Add({{"method", std::string(method)}, {"code", std::string(code)}}).Increment();
}

void Metrics::CountHttpResponse(const std::string& path, int status) {
  http_requests_->Add({{"path", path}, {"code", std::to_string(status)}}).Increment();
}

void Metrics::OnStep(const serving::EngineStepStats& step) {
  histogram(kStepTokens).Observe(step.num_scheduled_tokens);
  histogram(kStepRequests).Observe(step.num_scheduled_requests);
  histogram(kStepDuration).Observe(step.duration_seconds);
  if (step.num_generated_tokens > 0) generation_tokens_->Increment(step.num_generated_tokens);
  if (step.num_prompt_tokens_completed > 0) {
    prompt_tokens_->Increment(static_cast<double>(step.num_prompt_tokens_completed));
  }
  if (step.num_preempted_requests > 0) preemptions_->Increment(step.num_preempted_requests);
  for (double s : step.queue_seconds) histogram(kQueueTime).Observe(s);
  for (double s : step.time_to_first_token_seconds) histogram(kTimeToFirstToken).Observe(s);
  for (double s : step.inter_token_seconds) histogram(kInterTokenLatency).Observe(s);
}

void Metrics::OnRequestFinished(const serving::EngineRequestStats& request) {
  finished_by_cause_[static_cast<int>(request.cause)]->Increment();
  histogram(kE2eLatency).Observe(request.e2e_seconds);
  histogram(kRequestPromptTokens).Observe(request.num_prompt_tokens);
  histogram(kRequestGenerationTokens).Observe(request.num_generated_tokens);
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  std::vector<MetricFamily> families = registry_->Collect();
  for (const auto& h : histograms_) {
    MetricFamily family{h->name, h->help, MetricType::Histogram, {}};
    family.metric.push_back(h->histogram.Collect());
    families.push_back(std::move(family));
  }
  std::function<serving::EngineLoad()> source;
  {
    absl::MutexLock lock(&source_mu_);
    source = load_source_;
  }
  if (source) {
    const serving::EngineLoad load = source();
    families.push_back(Single("kvserve_requests_running", "Requests holding KV pages and running.",
                              MetricType::Gauge, load.running));
    families.push_back(Single("kvserve_requests_waiting",
                              "Requests queued for admission (including preempted ones).",
                              MetricType::Gauge, load.waiting));
    families.push_back(Single("kvserve_kv_cache_usage_ratio",
                              "Fraction of KV cache pages in use by requests (0 to 1).",
                              MetricType::Gauge, load.kv_usage));
    families.push_back(Single("kvserve_kv_cache_free_pages",
                              "KV cache pages not held by a request (cached prefixes included).",
                              MetricType::Gauge, load.free_pages));
    families.push_back(Single("kvserve_kv_cache_pages", "KV cache pages in total.",
                              MetricType::Gauge, load.total_pages));
    families.push_back(Single("kvserve_prefix_cache_queries_tokens_total",
                              "Prompt tokens looked up in the prefix cache.", MetricType::Counter,
                              static_cast<double>(load.prefix_query_tokens)));
    families.push_back(Single("kvserve_prefix_cache_hits_tokens_total",
                              "Prompt tokens found in the prefix cache.", MetricType::Counter,
                              static_cast<double>(load.prefix_hit_tokens)));
  }
  std::sort(families.begin(), families.end(),
            [](const MetricFamily& a, const MetricFamily& b) { return a.name < b.name; });
  return families;
}

std::string Metrics::SerializeText() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace kvserve::server
