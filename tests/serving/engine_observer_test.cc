// EngineLoop → EngineObserver: the step and request statistics it reports, checked against
// counts derived by hand from the requests the test submits (a fake executor that always samples
// the same token, so no model is needed).
#include "serving/engine_observer.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "serving/engine_loop.h"

namespace kvserve::serving {
namespace {

constexpr int32_t kSampledToken = 7;

// Samples kSampledToken for every request due a sample; sleeps `step_delay` per step so timings
// have a floor the test can check.
class ConstantExecutor final : public StepExecutor {
 public:
  explicit ConstantExecutor(std::chrono::milliseconds step_delay) : step_delay_(step_delay) {}
  ExecutorShape shape() const override {
    return ExecutorShape{
        .page_size = 16, .num_pages = 256, .vocab_size = 100, .context_length = 2048};
  }
  void AddSequence(const std::string&, const engine::SamplingParams&,
                   absl::Span<const int32_t>) override {}
  void RemoveSequence(const std::string&) override {}
  absl::StatusOr<StepResults> Execute(const scheduler::StepPlan& plan) override {
    std::this_thread::sleep_for(step_delay_);
    StepResults out(plan.scheduled.size());
    for (size_t i = 0; i < plan.scheduled.size(); ++i) {
      if (plan.scheduled[i].sample) out[i].emplace().token = kSampledToken;
    }
    return out;
  }

 private:
  std::chrono::milliseconds step_delay_;
};

// Records everything; the engine thread writes, the test reads after the requests finished.
class RecordingObserver final : public EngineObserver {
 public:
  void OnStep(const EngineStepStats& step) override {
    absl::MutexLock lock(&mu_);
    steps.push_back(step);
  }
  void OnRequestFinished(const EngineRequestStats& request) override {
    absl::MutexLock lock(&mu_);
    finished.push_back(request);
  }
  // Waits until `n` requests were reported finished.
  bool WaitFinished(size_t n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return finished.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20));
  }

  absl::Mutex mu_;
  std::vector<EngineStepStats> steps ABSL_GUARDED_BY(mu_);
  std::vector<EngineRequestStats> finished ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<EngineLoop> MakeLoop(RecordingObserver* observer,
                                     std::chrono::milliseconds step_delay) {
  EngineLoopConfig config;
  config.scheduler.max_num_seqs = 16;
  config.scheduler.max_num_batched_tokens = 512;
  config.observer = observer;
  auto loop = EngineLoop::Create(std::make_unique<ConstantExecutor>(step_delay), config);
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(*loop);
}

GenerationRequest Request(int prompt_length, int max_tokens) {
  GenerationRequest r;
  for (int i = 0; i < prompt_length; ++i) r.prompt.push_back(10 + i);
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  r.sampling.temperature = 0;
  return r;
}

void Drain(OutputChannel& channel) {
  RequestOutput out;
  while (channel.Pop(&out, absl::Now() + absl::Seconds(20))) {
    if (out.finished) return;
  }
  ADD_FAILURE() << "no final output for " << channel.request_id();
}

TEST(EngineObserverTest, CountsMatchTheSubmittedRequests) {
  RecordingObserver observer;
  auto loop = MakeLoop(&observer, std::chrono::milliseconds(5));
  const int prompt_lengths[] = {3, 5, 9};
  const int max_tokens[] = {4, 6, 2};
  std::vector<std::shared_ptr<OutputChannel>> channels;
  for (int i = 0; i < 3; ++i) {
    auto channel = loop->Submit(Request(prompt_lengths[i], max_tokens[i]));
    ASSERT_TRUE(channel.ok()) << channel.status();
    channels.push_back(*channel);
  }
  for (auto& c : channels) Drain(*c);
  ASSERT_TRUE(observer.WaitFinished(3));
  loop->Shutdown();

  absl::MutexLock lock(&observer.mu_);
  // By hand: 17 prompt tokens, 12 generated; every prompt is computed once and every generated
  // token but each request's last is fed back once: 17 + (12 - 3) = 26 computed tokens.
  int64_t generated = 0, prompt_done = 0, computed = 0, preempted = 0;
  size_t queue = 0, ttft = 0, itl = 0;
  for (const EngineStepStats& s : observer.steps) {
    generated += s.num_generated_tokens;
    prompt_done += s.num_prompt_tokens_completed;
    computed += s.num_scheduled_tokens;
    preempted += s.num_preempted_requests;
    queue += s.queue_seconds.size();
    ttft += s.time_to_first_token_seconds.size();
    itl += s.inter_token_seconds.size();
    EXPECT_GE(s.num_scheduled_requests, 1);
    EXPECT_LE(s.num_scheduled_requests, 3);
    EXPECT_GE(s.duration_seconds, 0.004);  // the executor sleeps 5 ms
    for (double d : s.inter_token_seconds) EXPECT_GE(d, 0.004);
  }
  EXPECT_EQ(generated, 12);
  EXPECT_EQ(prompt_done, 17);
  EXPECT_EQ(computed, 26);
  EXPECT_EQ(preempted, 0);
  EXPECT_EQ(queue, 3u);
  EXPECT_EQ(ttft, 3u);
  EXPECT_EQ(itl, 9u);  // (4-1) + (6-1) + (2-1)
  // The longest request needs 6 steps (more if the loop started before all three arrived).
  EXPECT_GE(observer.steps.size(), 6u);

  ASSERT_EQ(observer.finished.size(), 3u);
  int64_t finished_prompt = 0, finished_generated = 0;
  for (const EngineRequestStats& r : observer.finished) {
    EXPECT_EQ(r.cause, scheduler::FinishReason::kLength);
    finished_prompt += r.num_prompt_tokens;
    finished_generated += r.num_generated_tokens;
    EXPECT_GE(r.time_to_first_token_seconds, 0.004);
    EXPECT_GE(r.e2e_seconds, r.time_to_first_token_seconds);
    EXPECT_GE(r.time_to_first_token_seconds, r.queue_seconds);
  }
  EXPECT_EQ(finished_prompt, 17);
  EXPECT_EQ(finished_generated, 12);
}

TEST(EngineObserverTest, FinishCausesNameWhoEndedTheRequest) {
  RecordingObserver observer;
  auto loop = MakeLoop(&observer, std::chrono::milliseconds(2));
  // A stop token: the constant token is a stop token.
  GenerationRequest stopping = Request(4, 50);
  stopping.stop.stop_token_ids = {kSampledToken};
  auto stop_channel = loop->Submit(std::move(stopping));
  ASSERT_TRUE(stop_channel.ok());
  Drain(**stop_channel);
  ASSERT_TRUE(observer.WaitFinished(1));

  // Aborted after its first token, once by the "server" for a stop string, once by a client.
  const scheduler::FinishReason causes[] = {scheduler::FinishReason::kStopString,
                                            scheduler::FinishReason::kCancelled};
  for (scheduler::FinishReason cause : causes) {
    auto channel = loop->Submit(Request(4, 1000));
    ASSERT_TRUE(channel.ok());
    RequestOutput out;
    ASSERT_TRUE((*channel)->Pop(&out, absl::Now() + absl::Seconds(20)));
    if (cause == scheduler::FinishReason::kCancelled) {
      loop->Abort((*channel)->request_id());
    } else {
      loop->Abort((*channel)->request_id(), cause);
    }
    Drain(**channel);
  }
  ASSERT_TRUE(observer.WaitFinished(3));

  // Shutdown with a request still waiting fails it: an error.
  auto last = loop->Submit(Request(4, 1000));
  ASSERT_TRUE(last.ok());
  loop->Shutdown();
  ASSERT_TRUE(observer.WaitFinished(4));

  absl::MutexLock lock(&observer.mu_);
  ASSERT_EQ(observer.finished.size(), 4u);
  EXPECT_EQ(observer.finished[0].cause, scheduler::FinishReason::kStop);
  EXPECT_EQ(observer.finished[0].num_generated_tokens, 1);
  EXPECT_EQ(observer.finished[1].cause, scheduler::FinishReason::kStopString);
  EXPECT_EQ(observer.finished[2].cause, scheduler::FinishReason::kCancelled);
  EXPECT_EQ(observer.finished[3].cause, scheduler::FinishReason::kError);
  EXPECT_EQ(scheduler::FinishReasonName(scheduler::FinishReason::kStopString), "stop_string");
  EXPECT_EQ(scheduler::FinishReasonName(scheduler::FinishReason::kContextLength), "context_length");
}

}  // namespace
}  // namespace kvserve::serving
