// StepDelayExecutor: wraps a StepExecutor and sleeps a fixed time before each step. It exists so
// integration tests (and demos of the streaming UI) can hold a request "running" for a known
// minimum time with a tiny model, instead of racing a model that finishes 2000 tokens in a second.
// Never used unless `--debug-step-delay-ms` is set.
//
// Ownership: owns the wrapped executor. Thread-safety: as StepExecutor (engine thread only).
#ifndef KVSERVE_SERVING_STEP_DELAY_EXECUTOR_H_
#define KVSERVE_SERVING_STEP_DELAY_EXECUTOR_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "serving/step_executor.h"

namespace kvserve::serving {

class StepDelayExecutor : public StepExecutor {
 public:
  StepDelayExecutor(std::unique_ptr<StepExecutor> inner, absl::Duration delay)
      : inner_(std::move(inner)), delay_(delay) {}

  ExecutorShape shape() const override { return inner_->shape(); }
  void AddSequence(const std::string& request_id, const engine::SamplingParams& params,
                   absl::Span<const int32_t> prompt) override {
    inner_->AddSequence(request_id, params, prompt);
  }
  void RemoveSequence(const std::string& request_id) override {
    inner_->RemoveSequence(request_id);
  }
  absl::StatusOr<StepResults> Execute(const scheduler::StepPlan& plan) override {
    absl::SleepFor(delay_);
    return inner_->Execute(plan);
  }

 private:
  std::unique_ptr<StepExecutor> inner_;
  absl::Duration delay_;
};

}  // namespace kvserve::serving

#endif  // KVSERVE_SERVING_STEP_DELAY_EXECUTOR_H_
