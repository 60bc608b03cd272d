// OutputChannel: the one-way hand-off of a request's results from the engine thread to
// whoever serves the request (a gRPC stream, an HTTP response, a benchmark).
//
// The engine thread Push()es one RequestOutput per step in which the request produced a token,
// and a last one with `finished` set. A consumer either blocks in Pop(), or registers a
// notifier (called on the engine thread after each push, must not block) and drains with
// TryPop() — what an asynchronous server does.
//
// Ownership: shared (std::shared_ptr) between the EngineLoop and the consumer; either may
// drop it first. Thread-safety: all methods are thread-safe.
#ifndef KVSERVE_SERVING_OUTPUT_CHANNEL_H_
#define KVSERVE_SERVING_OUTPUT_CHANNEL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/request.h"

namespace kvserve::serving {

struct GeneratedToken {
  int32_t token_id = 0;
  float logprob = 0.f;                                  // of the raw model distribution
  std::vector<std::pair<int32_t, float>> top_logprobs;  // when requested, most likely first
};

struct RequestStats {
  int32_t num_prompt_tokens = 0;
  int32_t num_output_tokens = 0;
  int32_t num_cached_prompt_tokens = 0;
  int32_t num_preemptions = 0;
  double queue_seconds = 0;  // arrival to first scheduled step
  double time_to_first_token_seconds = 0;
  double total_seconds = 0;
};

struct RequestOutput {
  std::vector<GeneratedToken> tokens;  // new tokens since the previous output
  bool finished = false;
  // Set when finished: why, and the whole request's figures. `error` is non-OK when the
  // engine failed the request (finish_reason is then kError).
  scheduler::FinishReason finish_reason = scheduler::FinishReason::kStop;
  RequestStats stats;
  absl::Status error;
};

class OutputChannel {
 public:
  explicit OutputChannel(std::string request_id) : request_id_(std::move(request_id)) {}

  const std::string& request_id() const { return request_id_; }

  // Engine side. Pushing after the finished output is a no-op.
  void Push(RequestOutput output);

  // Consumer side. Pop() waits until an output is available or `deadline` passes (false then).
  bool Pop(RequestOutput* output, absl::Time deadline = absl::InfiniteFuture());
  bool TryPop(RequestOutput* output);
  // `notify` runs after each Push (on the pushing thread), and once at registration if outputs
  // are already queued. Pass nullptr to unregister.
  void SetNotifier(std::function<void()> notify);
  bool finished_pushed() const;

 private:
  const std::string request_id_;
  mutable absl::Mutex mu_;
  std::deque<RequestOutput> queue_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> notify_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvserve::serving

#endif  // KVSERVE_SERVING_OUTPUT_CHANNEL_H_
