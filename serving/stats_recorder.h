// StatsRecorder: the engine loop's bookkeeping of time and token counts, kept beside the loop so
// that EngineLoop::Run reads as the design's loop. It keeps the figures of one step
// (EngineStepStats) and, in each request's RequestTimeline, when the request arrived, was first
// scheduled and got its tokens; it turns them into the request's final RequestStats and tells the
// EngineObserver (metrics) about every step and every finished request.
//
// Ownership: does not own the observer (may be null). Thread-safety: engine thread only.
#ifndef KVSERVE_SERVING_STATS_RECORDER_H_
#define KVSERVE_SERVING_STATS_RECORDER_H_

#include "absl/time/time.h"
#include "scheduler/finish_reason.h"
#include "scheduler/request.h"
#include "scheduler/step_plan.h"
#include "serving/engine_observer.h"
#include "serving/output_channel.h"

namespace kvserve::serving {

// One live request's times and running token counts.
struct RequestTimeline {
  absl::Time arrival;
  absl::Time first_scheduled = absl::InfinitePast();
  absl::Time first_token = absl::InfinitePast();
  absl::Time last_token = absl::InfinitePast();
  RequestStats stats;  // token counts kept up to date; times filled by FinalStats
};

class StatsRecorder {
 public:
  explicit StatsRecorder(EngineObserver* observer) : observer_(observer) {}

  // A step starts at `start` (before Schedule) with `plan`.
  void BeginStep(const scheduler::StepPlan& plan, absl::Time start);
  // `request` is in the step's batch at `now`; `state` is the scheduler's view of it (or null).
  void Scheduled(RequestTimeline& request, const scheduler::Request* state, absl::Time now);
  // A token of `request` was published at `now`.
  void TokenPublished(RequestTimeline& request, absl::Time now);
  // The step's outputs are out; tells the observer about a step that ran a batch.
  void EndStep(const scheduler::StepPlan& plan);

  // The figures of a request that finishes at `now`.
  static RequestStats FinalStats(const RequestTimeline& request, absl::Time now);
  // Tells the observer that a request finished (after its final output was published).
  void Finished(const RequestStats& stats, scheduler::FinishReason reason);

 private:
  EngineObserver* const observer_;
  absl::Time step_start_;
  EngineStepStats step_;  // reused every step
};

}  // namespace kvserve::serving

#endif  // KVSERVE_SERVING_STATS_RECORDER_H_
