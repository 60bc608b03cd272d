// EngineObserver: what the engine loop reports about its work, for metrics.
//
// The loop calls the observer on the engine thread, once per step and once per finished request,
// after the step's outputs have been published. Implementations must be cheap and must not block
// (no locks the scrape side may hold for long): they run between two forward passes.
//
// Ownership: the loop does not own its observer (EngineLoopConfig::observer), which must outlive
// the loop. The stats structs are owned by the loop and valid only during the call.
#ifndef KVSERVE_SERVING_ENGINE_OBSERVER_H_
#define KVSERVE_SERVING_ENGINE_OBSERVER_H_

#include <cstdint>
#include <vector>

#include "scheduler/finish_reason.h"

namespace kvserve::serving {

struct EngineStepStats {
  int32_t num_scheduled_tokens = 0;    // tokens computed in the forward pass (StepPlan)
  int32_t num_scheduled_requests = 0;  // requests in the batch
  int32_t num_preempted_requests = 0;  // requests that lost their KV pages in this step
  int32_t num_generated_tokens = 0;    // new tokens sampled and published
  // Prompt lengths of the requests whose first token came in this step (their prompt is done).
  int64_t num_prompt_tokens_completed = 0;
  double duration_seconds = 0;  // Schedule + Execute + Update + publishing
  // One entry per request first scheduled in this step: arrival → first scheduled.
  std::vector<double> queue_seconds;
  // One entry per request whose first token came in this step: arrival → first token.
  std::vector<double> time_to_first_token_seconds;
  // One entry per token that is not its request's first: time since that request's previous
  // token.
  std::vector<double> inter_token_seconds;
};

struct EngineRequestStats {
  scheduler::FinishReason cause = scheduler::FinishReason::kStop;  // who or what ended it
  int32_t num_prompt_tokens = 0;
  int32_t num_generated_tokens = 0;
  int32_t num_cached_prompt_tokens = 0;     // prompt tokens served from the prefix cache
  double queue_seconds = 0;                 // arrival → first scheduled (or → finish, if never)
  double time_to_first_token_seconds = -1;  // -1: no token was generated
  double e2e_seconds = 0;                   // arrival → finish
};

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  // After every step that ran a batch.
  virtual void OnStep(const EngineStepStats& step) = 0;
  // When a request's final output has been published (finished, aborted or failed).
  virtual void OnRequestFinished(const EngineRequestStats& request) = 0;
};

}  // namespace kvserve::serving

#endif  // KVSERVE_SERVING_ENGINE_OBSERVER_H_
