// StepExecutor: all the EngineLoop knows of the model. It runs one StepPlan as a batched
// forward pass and samples the requests that need a token. The loop, the Scheduler and their
// tests see no tensors; tests can plug in a fake executor.
//
// Thread-safety: called only from the engine thread.
#ifndef KVSERVE_SERVING_STEP_EXECUTOR_H_
#define KVSERVE_SERVING_STEP_EXECUTOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/sampling.h"
#include "scheduler/step_plan.h"

namespace kvserve::serving {

// What the engine's KV pool looks like, for sizing the scheduler.
struct ExecutorShape {
  int32_t page_size = 16;
  int32_t num_pages = 0;
  int32_t vocab_size = 0;
  int32_t context_length = 0;
};

// What a step sampled, aligned with StepPlan::scheduled: entry i is set iff scheduled[i].sample.
using StepResults = std::vector<std::optional<engine::SampleResult>>;

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;

  virtual ExecutorShape shape() const = 0;

  // Creates the per-request sampling state. Called once per request before it is scheduled;
  // the state survives preemption (a recompute does not resample).
  virtual void AddSequence(const std::string& request_id, const engine::SamplingParams& params,
                           absl::Span<const int32_t> prompt) = 0;
  // Drops the state of a finished or aborted request (no-op if unknown).
  virtual void RemoveSequence(const std::string& request_id) = 0;

  // Runs the plan and returns a sampled token for every scheduled request with `sample` set.
  virtual absl::StatusOr<StepResults> Execute(const scheduler::StepPlan& plan) = 0;
};

}  // namespace kvserve::serving

#endif  // KVSERVE_SERVING_STEP_EXECUTOR_H_
