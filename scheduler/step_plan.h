// StepPlan: the scheduler's decision for one engine step, as plain data. The runner turns it into
// one batched forward pass; the sampler samples the rows marked `sample`; Scheduler::Update takes
// the same plan back with the sampled tokens.
//
// Ownership: a value; holds copies, no pointers into the scheduler. Thread-safety: a value.
#ifndef KVSERVE_SCHEDULER_STEP_PLAN_H_
#define KVSERVE_SCHEDULER_STEP_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvserve::scheduler {

struct ScheduledRequest {
  std::string request_id;
  // The tokens to compute this step, at positions start_position, start_position + 1, ...
  std::vector<int32_t> token_ids;
  // The request's num_computed_tokens before this step: positions below it are in the KV cache.
  int32_t start_position = 0;
  // Page ids in position order, covering at least start_position + token_ids.size() positions.
  std::vector<int32_t> page_table;
  // True iff after this step all the request's known tokens are computed, so the logits of its
  // last token must be sampled (false for every chunk of a prefill but the last).
  bool sample = false;
};

struct StepPlan {
  // Requests already running come first (in admission order), then newly admitted ones.
  std::vector<ScheduledRequest> scheduled;
  // Requests that lost their pages this step; they are back in the waiting queue.
  std::vector<std::string> preempted_ids;
  // Requests that finished or were aborted since the previous plan; per-request state kept
  // outside the scheduler (sampler state, output channels) can be dropped.
  std::vector<std::string> finished_ids;
  // Sum of token_ids.size() over `scheduled`.
  int total_tokens = 0;

  bool empty() const { return scheduled.empty(); }
};

// What the executor sampled in a step, aligned with StepPlan::scheduled: entry i is the token of
// scheduled[i], set iff scheduled[i].sample.
using SampledTokens = std::vector<std::optional<int32_t>>;

}  // namespace kvserve::scheduler

#endif  // KVSERVE_SCHEDULER_STEP_PLAN_H_
