// Request: one generation request as the scheduler sees it — token ids, a progress counter,
// a state machine and the conditions under which it stops. No tensors, no sampling params.
//
// Sampling parameters are deliberately absent: they are not policy. The engine loop keeps its own
// map from request id to sampler state and drops the entry when the id shows up in
// StepPlan::finished_ids.
//
// Progress is one counter: `num_computed_tokens` of `num_tokens()` (prompt + output) have their
// keys/values in the KV cache. Prefill, chunked prefill, prefix-cache hits and decode are all
// "compute the next min(remaining, budget) tokens".
//
// Ownership: a Request is owned by the Scheduler from AddRequest until it finishes or is aborted.
// Thread-safety: none; only the engine thread touches it.
#ifndef KVSERVE_SCHEDULER_REQUEST_H_
#define KVSERVE_SCHEDULER_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "scheduler/finish_reason.h"

namespace kvserve::scheduler {

enum class RequestState {
  kWaiting,    // queued, never admitted
  kRunning,    // admitted: holds KV pages
  kPreempted,  // was running, lost its pages; back in the waiting queue, will recompute
  kFinishedStop,
  kFinishedLength,
  kFinishedContextLength,
  kFinishedAborted,
};

bool IsFinished(RequestState state);
// The reason behind a finished state (kCancelled for kFinishedAborted: the scheduler is not told
// who aborted); nullopt for unfinished states.
std::optional<FinishReason> FinishReasonOf(RequestState state);
RequestState FinishedStateFor(FinishReason reason);

struct StopConditions {
  int32_t max_tokens = 16;              // output tokens; must be >= 1
  std::vector<int32_t> stop_token_ids;  // stop even when ignore_eos
  absl::flat_hash_set<int32_t> eos_token_ids;
  bool ignore_eos = false;
  // The model's context (prompt + output tokens); 0 means the scheduler's max_model_len. The
  // effective value is min(this, max_model_len).
  int32_t max_context_length = 0;
};

class Request {
 public:
  Request(std::string id, std::vector<int32_t> prompt_token_ids, StopConditions stop);

  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  const std::string& id() const { return id_; }
  const StopConditions& stop() const { return stop_; }

  int32_t num_prompt_tokens() const { return num_prompt_tokens_; }
  int32_t num_output_tokens() const {
    return static_cast<int32_t>(all_token_ids_.size()) - num_prompt_tokens_;
  }
  int32_t num_tokens() const { return static_cast<int32_t>(all_token_ids_.size()); }
  absl::Span<const int32_t> prompt_token_ids() const {
    return absl::MakeConstSpan(all_token_ids_).subspan(0, num_prompt_tokens_);
  }
  absl::Span<const int32_t> output_token_ids() const {
    return absl::MakeConstSpan(all_token_ids_).subspan(num_prompt_tokens_);
  }
  // Prompt followed by output, in position order.
  absl::Span<const int32_t> all_token_ids() const { return all_token_ids_; }

  int32_t num_computed_tokens() const { return num_computed_tokens_; }
  void set_num_computed_tokens(int32_t n) { num_computed_tokens_ = n; }

  RequestState state() const { return state_; }
  void set_state(RequestState state) { state_ = state; }
  bool is_finished() const { return IsFinished(state_); }

  // Order of arrival at the scheduler (0, 1, 2, ...), assigned by AddRequest.
  int64_t arrival_index() const { return arrival_index_; }
  void set_arrival_index(int64_t index) { arrival_index_ = index; }

  int32_t num_preemptions() const { return num_preemptions_; }
  void CountPreemption() { ++num_preemptions_; }

  // Prompt tokens served from the prefix cache at first admission; -1 until admitted.
  int32_t num_cached_prompt_tokens() const { return num_cached_prompt_tokens_; }
  void set_num_cached_prompt_tokens(int32_t n) { num_cached_prompt_tokens_ = n; }

  // min(stop().max_context_length, max_model_len), or max_model_len when unset.
  int32_t ContextLength(int32_t max_model_len) const;

  void AppendOutputToken(int32_t token);

  // Whether the request must stop now, judged on its last output token and its lengths. Checked
  // in this order, so a stop token that also reaches max_tokens reports kStop: stop/EOS token,
  // max_tokens, context length. nullopt when there is no output yet or it may continue.
  std::optional<FinishReason> CheckStop(int32_t max_model_len) const;

 private:
  std::string id_;
  std::vector<int32_t> all_token_ids_;
  int32_t num_prompt_tokens_;
  StopConditions stop_;
  int32_t num_computed_tokens_ = 0;
  RequestState state_ = RequestState::kWaiting;
  int64_t arrival_index_ = -1;
  int32_t num_preemptions_ = 0;
  int32_t num_cached_prompt_tokens_ = -1;
};

}  // namespace kvserve::scheduler

#endif  // KVSERVE_SCHEDULER_REQUEST_H_
