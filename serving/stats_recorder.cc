#include "serving/stats_recorder.h"

#include <algorithm>

namespace kvserve::serving {

void StatsRecorder::BeginStep(const scheduler::StepPlan& plan, absl::Time start) {
  step_start_ = start;
  step_.num_scheduled_tokens = plan.total_tokens;
  step_.num_scheduled_requests = static_cast<int32_t>(plan.scheduled.size());
  step_.num_preempted_requests = static_cast<int32_t>(plan.preempted_ids.size());
  step_.num_generated_tokens = 0;
  step_.num_prompt_tokens_completed = 0;
  step_.queue_seconds.clear();
  step_.time_to_first_token_seconds.clear();
  step_.inter_token_seconds.clear();
}

void StatsRecorder::Scheduled(RequestTimeline& request, const scheduler::Request* state,
                              absl::Time now) {
  if (request.first_scheduled == absl::InfinitePast()) {
    request.first_scheduled = now;
    step_.queue_seconds.push_back(absl::ToDoubleSeconds(now - request.arrival));
  }
  if (state != nullptr) {
    request.stats.num_cached_prompt_tokens = std::max(0, state->num_cached_prompt_tokens());
    request.stats.num_preemptions = state->num_preemptions();
  }
}

void StatsRecorder::TokenPublished(RequestTimeline& request, absl::Time now) {
  ++request.stats.num_output_tokens;
  ++step_.num_generated_tokens;
  if (request.first_token == absl::InfinitePast()) {
    request.first_token = now;
    step_.time_to_first_token_seconds.push_back(absl::ToDoubleSeconds(now - request.arrival));
    step_.num_prompt_tokens_completed += request.stats.num_prompt_tokens;
  } else {
    step_.inter_token_seconds.push_back(absl::ToDoubleSeconds(now - request.last_token));
  }
  request.last_token = now;
}

void StatsRecorder::EndStep(const scheduler::StepPlan& plan) {
  if (observer_ == nullptr || plan.empty()) return;
  step_.duration_seconds = absl::ToDoubleSeconds(absl::Now() - step_start_);
  observer_->OnStep(step_);
}

RequestStats StatsRecorder::FinalStats(const RequestTimeline& request, absl::Time now) {
  RequestStats st = request.stats;
  const absl::Time queued_until =
      request.first_scheduled != absl::InfinitePast() ? request.first_scheduled : now;
  st.queue_seconds = absl::ToDoubleSeconds(queued_until - request.arrival);
  if (request.first_token != absl::InfinitePast()) {
    st.time_to_first_token_seconds = absl::ToDoubleSeconds(request.first_token - request.arrival);
  }
  st.total_seconds = absl::ToDoubleSeconds(now - request.arrival);
  return st;
}

void StatsRecorder::Finished(const RequestStats& st, scheduler::FinishReason reason) {
  if (observer_ == nullptr) return;
  EngineRequestStats observed;
  observed.cause = reason;
  observed.num_prompt_tokens = st.num_prompt_tokens;
  observed.num_generated_tokens = st.num_output_tokens;
  observed.num_cached_prompt_tokens = st.num_cached_prompt_tokens;
  observed.queue_seconds = st.queue_seconds;
  observed.time_to_first_token_seconds =
      st.num_output_tokens > 0 ? st.time_to_first_token_seconds : -1;
  observed.e2e_seconds = st.total_seconds;
  observer_->OnRequestFinished(observed);
}

}  // namespace kvserve::serving
