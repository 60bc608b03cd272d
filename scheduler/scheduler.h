// Scheduler: continuous-batching policy. Each engine step it decides which requests compute
// how many tokens (Schedule), and afterwards folds the sampled tokens back in (Update).
//
// Policy, per step, with a budget of max_num_batched_tokens tokens:
//  1. Running requests, decoding ones (one token left to compute) first, then those still
//     prefilling, each group in admission order, get min(uncomputed tokens, remaining budget,
//     long_prefill_token_threshold) tokens: 1 in decode, the next prompt chunk while
//     prefilling. So a long prompt arriving delays the streams that are decoding by at most one
//     budget-sized step, and never takes their budget. When pages cannot be allocated, the last
//     request in that order (the youngest prefilling one, else the youngest decoding one) is
//     preempted (pages freed, progress reset to 0, put at the front of the waiting queue) and
//     the allocation retried; the request being scheduled may preempt itself.
//  2. If nobody was preempted this step, waiting requests are admitted first come, first served
//     while max_num_seqs running requests and the budget allow, starting after their cached
//     prefix. Admission stops at the first request whose pages cannot be allocated (no skipping
//     ahead, so a long prompt is never starved).
// Running out of pages is therefore a scheduling outcome, never an error. AddRequest refuses a
// request that could not fit in the whole pool even alone, so the oldest running request can
// always make progress and the loop cannot livelock.
//
// Ownership: owns its Requests (from AddRequest until they finish or are aborted) and the
// KvCacheManager. Thread-safety: none. Only the engine thread calls it; other threads hand
// requests and aborts to that thread.
#ifndef KVSERVE_SCHEDULER_SCHEDULER_H_
#define KVSERVE_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/kv_cache_manager.h"
#include "scheduler/request.h"
#include "scheduler/step_plan.h"

namespace kvserve::scheduler {

struct SchedulerConfig {
  int32_t max_num_seqs = 256;             // running requests at once
  // Tokens computed per step, over all requests. 256 by measurement on 2-core CPUs (360M Q8_0,
  // 8 streams while 2000-token prompts arrive): the streams' largest gap 7.9 s at 2048, 1.4 s at
  // 256, for 5% more time to the long prompts' first token (docs/BENCHMARKS.md, chat-load).
  int32_t max_num_batched_tokens = 256;
  int32_t page_size = 16;                 // tokens per KV page (the engine's KvPoolShape)
  int32_t num_pages = 0;                  // pages in the engine's KV pool
  bool enable_prefix_caching = true;
  int32_t max_model_len = 4096;  // the model's context: prompt + output tokens
  // Most tokens one request may compute in a step, so a long prompt leaves budget to others;
  // 0 means no cap beyond max_num_batched_tokens.
  int32_t long_prefill_token_threshold = 0;
};

// InvalidArgument naming the first bad field.
absl::Status ValidateSchedulerConfig(const SchedulerConfig& config);

// What happened to one request in a step (or, for aborts, since the previous Update).
struct RequestEvent {
  std::string request_id;
  std::optional<int32_t> new_token;           // the token sampled this step, appended to the output
  std::optional<FinishReason> finish_reason;  // set when the request finished
  int32_t scheduled_index = -1;  // its entry in the step's plan.scheduled; -1 for aborts
};

struct UpdateResult {
  std::vector<RequestEvent> events;
};

class Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const SchedulerConfig& config);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request (state kWaiting) behind all earlier ones. Errors, naming the problem:
  // InvalidArgument for a null request, an empty id or prompt, max_tokens < 1, a prompt that
  // leaves no room in the context to generate, or a request that could not fit in the whole KV
  // pool; AlreadyExists for the id of a request still queued or running.
  absl::Status AddRequest(std::unique_ptr<Request> request);

  // Finishes a queued or running request as aborted (kCancelled); its pages are freed at once. It
  // is reported in the next StepPlan::finished_ids and as an event of the next Update. NotFound if
  // no such request is queued or running (e.g. it already finished).
  absl::Status Abort(absl::string_view request_id);

  // Plans the next step (see the policy above). An empty plan means nothing to compute.
  StepPlan Schedule();

  // Applies a step planned by the last Schedule(): advances each request's computed tokens,
  // appends sampled[i] to every plan.scheduled[i] marked `sample`, checks stop conditions and
  // frees the pages of requests that finished. Requests aborted since Schedule() are skipped.
  // Events come in plan order, preceded by aborts since the previous Update. InvalidArgument
  // (changing nothing) if a token to sample is missing from `sampled` or the plan is stale.
  absl::StatusOr<UpdateResult> Update(const StepPlan& plan, const SampledTokens& sampled);

  const SchedulerConfig& config() const { return config_; }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  bool has_unfinished_requests() const { return !requests_.empty(); }
  // A queued or running request; nullptr otherwise. Valid until the next Update or Abort.
  const Request* GetRequest(absl::string_view request_id) const;
  std::vector<std::string> RunningIds() const;  // admission order
  std::vector<std::string> WaitingIds() const;  // queue order

  double kv_usage() const { return kv_.usage(); }
  int32_t num_free_pages() const { return kv_.num_free_pages(); }
  const KvCacheManager& kv_cache_manager() const { return kv_; }

  int64_t num_preemptions() const { return num_preemptions_; }
  int64_t prefix_query_tokens() const { return kv_.prefix_query_tokens(); }
  int64_t prefix_hit_tokens() const { return kv_.prefix_hit_tokens(); }

 private:
  explicit Scheduler(const SchedulerConfig& config);

  int32_t TokensToSchedule(const Request& request, int32_t num_computed, int32_t budget) const;
  // running_, decoding requests first, then prefilling ones, each in admission order.
  std::vector<Request*> DecodeFirstOrder() const;
  void Preempt(Request* request, StepPlan& plan);
  void AddToPlan(const Request& request, int32_t num_tokens, StepPlan& plan) const;
  // Frees the pages and drops the request; `running_` must not list it any more.
  void Finish(Request* request, FinishReason reason);

  SchedulerConfig config_;
  KvCacheManager kv_;
  absl::flat_hash_map<std::string, std::unique_ptr<Request>> requests_;  // queued or running
  std::deque<Request*> waiting_;
  std::vector<Request*> running_;  // admission order
  std::vector<std::string> finished_since_last_plan_;
  std::vector<RequestEvent> aborted_since_last_update_;
  int64_t next_arrival_index_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace kvserve::scheduler

#endif  // KVSERVE_SCHEDULER_SCHEDULER_H_
