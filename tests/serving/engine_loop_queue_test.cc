// EngineLoop's queue limit (--max-queued-requests), checked at the exact moments a request is in
// flight between the front and the scheduler. A gated fake executor holds the engine thread
// inside a step, so the test knows which step a submission lands in (no timing races).
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "serving/engine_loop.h"

namespace kvserve::serving {
namespace {

// Every Execute waits until the test grants it a step; samples token 7 for each request due one.
class GatedExecutor final : public StepExecutor {
 public:
  ExecutorShape shape() const override {
    return ExecutorShape{
        .page_size = 16, .num_pages = 64, .vocab_size = 100, .context_length = 512};
  }
  void AddSequence(const std::string&, const engine::SamplingParams&,
                   absl::Span<const int32_t>) override {}
  void RemoveSequence(const std::string&) override {}
  absl::StatusOr<StepResults> Execute(const scheduler::StepPlan& plan) override {
    absl::MutexLock lock(&mu_);
    ++entered_;
    auto granted = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return grants_ > 0 || open_; };
    mu_.Await(absl::Condition(&granted));
    if (!open_) --grants_;
    StepResults out(plan.scheduled.size());
    for (size_t i = 0; i < plan.scheduled.size(); ++i) {
      if (plan.scheduled[i].sample) out[i].emplace().token = 7;
    }
    return out;
  }

  // Waits until the engine thread has entered Execute `n` times in total (and is held there).
  bool WaitEntered(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return entered_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(20));
  }
  void GrantOneStep() {
    absl::MutexLock lock(&mu_);
    ++grants_;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }

 private:
  absl::Mutex mu_;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  int grants_ ABSL_GUARDED_BY(mu_) = 0;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
};

GenerationRequest Request(int max_tokens) {
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  r.sampling.temperature = 0;
  return r;
}

TEST(EngineLoopQueueTest, RequestHandedToTheSchedulerCountsAgainstTheQueueAtOnce) {
  auto owned = std::make_unique<GatedExecutor>();
  GatedExecutor* executor = owned.get();
  EngineLoopConfig config;
  config.scheduler.max_num_seqs = 1;  // one runs, the next waits
  config.max_queued_requests = 1;
  auto loop = EngineLoop::Create(std::move(owned), config);
  ASSERT_TRUE(loop.ok()) << loop.status();
  // On an early failure, let the engine thread go so that the loop can shut down.
  absl::Cleanup release = [executor] { executor->Open(); };

  auto running = (*loop)->Submit(Request(50));
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_TRUE(executor->WaitEntered(1));  // step 1 (running's prefill) is held

  auto waiting = (*loop)->Submit(Request(5));  // sits in the front's pending list
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  EXPECT_EQ((*loop)->Load().waiting, 1);
  auto refused = (*loop)->Submit(Request(5));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();

  // Step 2 moves `waiting` into the scheduler (it cannot run: max_num_seqs = 1) and is held.
  // The queue is still full: before the fix a submission here slipped through, because the
  // published waiting count lagged one step behind.
  executor->GrantOneStep();
  ASSERT_TRUE(executor->WaitEntered(2));
  EXPECT_EQ((*loop)->Load().running, 1);
  EXPECT_EQ((*loop)->Load().waiting, 1);
  auto refused_again = (*loop)->Submit(Request(5));
  EXPECT_EQ(refused_again.status().code(), absl::StatusCode::kResourceExhausted)
      << refused_again.status();

  executor->Open();
  RequestOutput out;
  int finished = 0;
  for (auto* channel : {running->get(), waiting->get()}) {
    while (channel->Pop(&out, absl::Now() + absl::Seconds(20))) {
      if (out.finished) {
        ++finished;
        break;
      }
    }
  }
  EXPECT_EQ(finished, 2);
  ASSERT_TRUE((*loop)->WaitIdle(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ((*loop)->Load().free_pages, 64);
  EXPECT_EQ((*loop)->Load().waiting, 0);
}

}  // namespace
}  // namespace kvserve::serving
