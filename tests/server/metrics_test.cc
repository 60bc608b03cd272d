// Metrics and AtomicHistogram: values in the text exposition checked against hand-computed
// numbers for hand-made engine stats.
#include "server/frontend/metrics.h"

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

// The sample line `name` (with its labels, exactly as exposed) → its value text.
std::string Sample(const std::string& text, const std::string& name) {
  const std::string prefix = name + " ";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (text.compare(pos, prefix.size(), prefix) == 0) {
      return text.substr(pos + prefix.size(), end - pos - prefix.size());
    }
    pos = end + 1;
  }
  return "<absent>";
}

TEST(AtomicHistogramTest, BucketsAreUpperInclusiveAndCumulative) {
  AtomicHistogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 2.0, 4.0, 100.0}) h.Observe(v);
  prometheus::ClientMetric m = h.Collect();
  ASSERT_EQ(m.histogram.bucket.size(), 4u);
  // <=1: {0.5, 1}; <=2: + {1.5, 2}; <=5: + {4}; +Inf: + {100}.
  EXPECT_EQ(m.histogram.bucket[0].cumulative_count, 2u);
  EXPECT_EQ(m.histogram.bucket[1].cumulative_count, 4u);
  EXPECT_EQ(m.histogram.bucket[2].cumulative_count, 5u);
  EXPECT_EQ(m.histogram.bucket[3].cumulative_count, 6u);
  EXPECT_TRUE(std::isinf(m.histogram.bucket[3].upper_bound));
  EXPECT_EQ(m.histogram.sample_count, 6u);
  EXPECT_DOUBLE_EQ(m.histogram.sample_sum, 109.0);
}

TEST(AtomicHistogramTest, ConcurrentObserversLoseNothing) {
  AtomicHistogram h({10});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 50000; ++i) h.Observe(t % 2 == 0 ? 1.0 : 20.0);
    });
  }
  for (auto& t : threads) t.join();
  prometheus::ClientMetric m = h.Collect();
  EXPECT_EQ(m.histogram.bucket[0].cumulative_count, 100000u);
  EXPECT_EQ(m.histogram.sample_count, 200000u);
  EXPECT_DOUBLE_EQ(m.histogram.sample_sum, 100000 * 1.0 + 100000 * 20.0);  // exact in doubles
}

TEST(MetricsTest, EngineStatsBecomeCountersAndHistograms) {
  Metrics metrics;
  serving::EngineStepStats step;
  step.num_scheduled_tokens = 30;
  step.num_scheduled_requests = 3;
  step.num_preempted_requests = 1;
  step.num_generated_tokens = 3;
  step.num_prompt_tokens_completed = 27;
  step.duration_seconds = 0.012;
  step.queue_seconds = {0.001, 0.002, 0.003};
  step.time_to_first_token_seconds = {0.05, 0.07, 0.3};
  step.inter_token_seconds = {};
  metrics.OnStep(step);
  step = {};
  step.num_scheduled_tokens = 3;
  step.num_scheduled_requests = 3;
  step.num_generated_tokens = 3;
  step.duration_seconds = 0.004;
  step.inter_token_seconds = {0.004, 0.004, 0.02};
  metrics.OnStep(step);
  serving::EngineRequestStats done;
  done.cause = scheduler::FinishReason::kLength;
  done.num_prompt_tokens = 9;
  done.num_generated_tokens = 2;
  done.e2e_seconds = 0.5;
  metrics.OnRequestFinished(done);
  done.cause = scheduler::FinishReason::kStopString;
  metrics.OnRequestFinished(done);
  metrics.CountGrpcRequest("Generate", "OK");
  metrics.CountGrpcRequest("Generate", "OK");
  metrics.CountGrpcRequest("Generate", "INVALID_ARGUMENT");
  metrics.CountHttpResponse("/metrics", 200);
  metrics.SetModelInfo("tiny", "llama", "f32", "bf16");

  std::string text = metrics.SerializeText();
  EXPECT_EQ(Sample(text, "kvserve_generation_tokens_total"), "6");
  EXPECT_EQ(Sample(text, "kvserve_prompt_tokens_total"), "27");
  EXPECT_EQ(Sample(text, "kvserve_preemptions_total"), "1");
  EXPECT_EQ(Sample(text, R"(kvserve_requests_finished_total{finish_reason="length"})"), "1");
  EXPECT_EQ(Sample(text, R"(kvserve_requests_finished_total{finish_reason="stop_string"})"), "1");
  EXPECT_EQ(Sample(text, R"(kvserve_requests_finished_total{finish_reason="cancelled"})"), "0");
  EXPECT_EQ(Sample(text, R"(kvserve_grpc_requests_total{code="OK",method="Generate"})"), "2");
  EXPECT_EQ(
      Sample(text, R"(kvserve_grpc_requests_total{code="INVALID_ARGUMENT",method="Generate"})"),
      "1");
  EXPECT_EQ(Sample(text, R"(kvserve_http_requests_total{code="200",path="/metrics"})"), "1");
  EXPECT_EQ(Sample(text, R"(kvserve_model_info{architecture="llama",kv_cache_dtype="bf16",)"
                         R"(model="tiny",weight_dtype="f32"})"),
            "1");
  EXPECT_EQ(Sample(text, "kvserve_step_tokens_count"), "2");
  EXPECT_EQ(Sample(text, "kvserve_step_tokens_sum"), "33");
  EXPECT_EQ(Sample(text, R"(kvserve_step_tokens_bucket{le="32"})"), "2");
  EXPECT_EQ(Sample(text, R"(kvserve_step_tokens_bucket{le="16"})"), "1");
  EXPECT_EQ(Sample(text, "kvserve_time_to_first_token_seconds_count"), "3");
  // 0.05 and 0.07 are at most 0.08; 0.3 is not.
  EXPECT_EQ(Sample(text, R"(kvserve_time_to_first_token_seconds_bucket{le="0.08"})"), "2");
  EXPECT_EQ(Sample(text, "kvserve_inter_token_latency_seconds_count"), "3");
  EXPECT_EQ(Sample(text, R"(kvserve_inter_token_latency_seconds_bucket{le="0.005"})"), "2");
  EXPECT_EQ(Sample(text, "kvserve_request_queue_time_seconds_count"), "3");
  EXPECT_EQ(Sample(text, "kvserve_e2e_request_latency_seconds_count"), "2");
  EXPECT_EQ(Sample(text, "kvserve_request_prompt_tokens_sum"), "18");
  EXPECT_EQ(Sample(text, "kvserve_request_generation_tokens_sum"), "4");
  EXPECT_EQ(Sample(text, "kvserve_step_requests_count"), "2");
  EXPECT_EQ(Sample(text, "kvserve_step_duration_seconds_count"), "2");
  // No load source yet: the gauges are absent rather than a misleading 0.
  EXPECT_EQ(Sample(text, "kvserve_kv_cache_pages"), "<absent>");

  metrics.SetLoadSource([] {
    serving::EngineLoad load;
    load.running = 2;
    load.waiting = 5;
    load.free_pages = 90;
    load.total_pages = 100;
    load.kv_usage = 0.1;
    load.prefix_query_tokens = 64;
    load.prefix_hit_tokens = 32;
    return load;
  });
  text = metrics.SerializeText();
  EXPECT_EQ(Sample(text, "kvserve_requests_running"), "2");
  EXPECT_EQ(Sample(text, "kvserve_requests_waiting"), "5");
  EXPECT_EQ(Sample(text, "kvserve_kv_cache_free_pages"), "90");
  EXPECT_EQ(Sample(text, "kvserve_kv_cache_pages"), "100");
  EXPECT_EQ(Sample(text, "kvserve_kv_cache_usage_ratio"), "0.1");
  EXPECT_EQ(Sample(text, "kvserve_prefix_cache_queries_tokens_total"), "64");
  EXPECT_EQ(Sample(text, "kvserve_prefix_cache_hits_tokens_total"), "32");
  EXPECT_NE(text.find("# TYPE kvserve_kv_cache_usage_ratio gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE kvserve_prefix_cache_hits_tokens_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE kvserve_step_duration_seconds histogram"), std::string::npos);
}

}  // namespace
}  // namespace kvserve::server
