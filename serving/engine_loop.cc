#include "serving/engine_loop.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "engine/step_profile.h"

namespace kvserve::serving {

absl::StatusOr<std::unique_ptr<EngineLoop>> EngineLoop::Create(
    std::unique_ptr<StepExecutor> executor, EngineLoopConfig config) {
  const ExecutorShape shape = executor->shape();
  config.scheduler.page_size = shape.page_size;
  config.scheduler.num_pages = shape.num_pages;
  if (config.scheduler.max_model_len <= 0 ||
      config.scheduler.max_model_len > shape.context_length) {
    config.scheduler.max_model_len = shape.context_length;
  }
  if (config.max_queued_requests < 1) {
    return absl::InvalidArgumentError("max_queued_requests must be at least 1");
  }
  absl::StatusOr<std::unique_ptr<scheduler::Scheduler>> scheduler =
      scheduler::Scheduler::Create(config.scheduler);
  if (!scheduler.ok()) return scheduler.status();
  std::unique_ptr<EngineLoop> loop(
      new EngineLoop(std::move(executor), std::move(*scheduler), std::move(config)));
  loop->PublishLoad();
  loop->thread_ = std::thread([l = loop.get()] { l->Run(); });
  return loop;
}

EngineLoop::EngineLoop(std::unique_ptr<StepExecutor> executor,
                       std::unique_ptr<scheduler::Scheduler> scheduler, EngineLoopConfig config)
    : executor_(std::move(executor)),
      scheduler_(std::move(scheduler)),
      config_(std::move(config)),
      shape_(executor_->shape()) {}

EngineLoop::~EngineLoop() { Shutdown(); }

absl::StatusOr<std::shared_ptr<OutputChannel>> EngineLoop::Submit(GenerationRequest request) {
  const int32_t n = static_cast<int32_t>(request.prompt.size());
  if (n == 0) return absl::InvalidArgumentError("prompt is empty");
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = request.prompt[i];
    if (id < 0 || id >= shape_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("prompt token id %d (at index %d) is outside the vocabulary [0, %d)", id,
                          i, shape_.vocab_size));
    }
  }
  if (request.stop.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", request.stop.max_tokens));
  }
  absl::Status params = engine::ValidateSamplingParams(request.sampling, shape_.vocab_size);
  if (!params.ok()) return params;
  const int32_t context = config_.scheduler.max_model_len;
  if (static_cast<int64_t>(n) + request.stop.max_tokens > context) {
    return absl::OutOfRangeError(absl::StrFormat(
        "prompt (%d tokens) + max_tokens (%d) exceeds the model's context of %d tokens", n,
        request.stop.max_tokens, context));
  }
  const int64_t pages_needed =
      (static_cast<int64_t>(n) + request.stop.max_tokens + shape_.page_size - 1) / shape_.page_size;
  if (pages_needed > shape_.num_pages) {
    return absl::OutOfRangeError(
        absl::StrFormat("prompt + max_tokens need %d KV pages but the whole KV cache has %d",
                        pages_needed, shape_.num_pages));
  }

  absl::MutexLock lock(&mu_);
  if (!accepting_ || stop_) return absl::UnavailableError("the server is shutting down");
  if (request.request_id.empty()) request.request_id = absl::StrCat("req-", next_id_++);
  if (ids_in_use_.contains(request.request_id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("request_id '", request.request_id, "' is already in use"));
  }
  if (load_.waiting + in_transit_ + static_cast<int32_t>(pending_.size()) >=
      config_.max_queued_requests) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "the waiting queue is full (%d requests); retry later", config_.max_queued_requests));
  }
  auto channel = std::make_shared<OutputChannel>(request.request_id);
  ids_in_use_.insert(request.request_id);
  ++num_unfinished_;
  pending_.push_back(Pending{std::move(request), channel, absl::Now()});
  return channel;
}

void EngineLoop::Abort(const std::string& request_id, scheduler::FinishReason reason) {
  absl::MutexLock lock(&mu_);
  aborts_.emplace_back(request_id, reason);
}

EngineLoad EngineLoop::Load() const {
  absl::MutexLock lock(&mu_);
  EngineLoad load = load_;
  load.waiting += in_transit_ + static_cast<int32_t>(pending_.size());
  return load;
}

void EngineLoop::StopAccepting() {
  absl::MutexLock lock(&mu_);
  accepting_ = false;
}

bool EngineLoop::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  // Idle also means Load() already shows it: the pages of the last finished request are free.
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return num_unfinished_ == 0 && !finished_since_publish_;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void EngineLoop::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    accepting_ = false;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::ApplyPendingWork(
    std::vector<Pending>& pending,
    std::vector<std::pair<std::string, scheduler::FinishReason>>& aborts) {
  for (Pending& p : pending) {
    const std::string id = p.request.request_id;
    Live& live = live_[id];
    live.channel = p.channel;
    live.arrival = p.arrival;
    live.num_logprobs = p.request.sampling.num_logprobs;
    live.stats.num_prompt_tokens = static_cast<int32_t>(p.request.prompt.size());
    executor_->AddSequence(id, p.request.sampling, p.request.prompt);
    auto req = std::make_unique<scheduler::Request>(id, std::move(p.request.prompt),
                                                    std::move(p.request.stop));
    absl::Status s = scheduler_->AddRequest(std::move(req));
    if (!s.ok()) Finish(id, scheduler::FinishReason::kError, s);
  }
  for (const auto& [id, cause] : aborts) {
    if (!live_.contains(id)) continue;
    // NotFound means it finished in the meantime; its final output is already out.
    if (scheduler_->Abort(id).ok()) Finish(id, cause);
  }
}

void EngineLoop::Finish(const std::string& id, scheduler::FinishReason reason, absl::Status error) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  Live& live = it->second;
  RequestOutput out;
  out.finished = true;
  out.finish_reason = reason;
  out.error = std::move(error);
  const absl::Time now = absl::Now();
  out.stats = live.stats;
  RequestStats& st = out.stats;
  if (live.first_scheduled != absl::InfinitePast()) {
    st.queue_seconds = absl::ToDoubleSeconds(live.first_scheduled - live.arrival);
  } else {
    st.queue_seconds = absl::ToDoubleSeconds(now - live.arrival);
  }
  if (live.first_token != absl::InfinitePast()) {
    st.time_to_first_token_seconds = absl::ToDoubleSeconds(live.first_token - live.arrival);
  }
  st.total_seconds = absl::ToDoubleSeconds(now - live.arrival);
  std::shared_ptr<OutputChannel> channel = std::move(live.channel);
  live_.erase(it);
  executor_->RemoveSequence(id);
  EngineRequestStats observed;
  if (config_.observer != nullptr) {
    observed.cause = reason;
    observed.num_prompt_tokens = st.num_prompt_tokens;
    observed.num_generated_tokens = st.num_output_tokens;
    observed.num_cached_prompt_tokens = st.num_cached_prompt_tokens;
    observed.queue_seconds = st.queue_seconds;
    observed.time_to_first_token_seconds =
        st.num_output_tokens > 0 ? st.time_to_first_token_seconds : -1;
    observed.e2e_seconds = st.total_seconds;
  }
  channel->Push(std::move(out));
  if (config_.observer != nullptr) config_.observer->OnRequestFinished(observed);
  absl::MutexLock lock(&mu_);
  ids_in_use_.erase(id);
  --num_unfinished_;
  finished_since_publish_ = true;
}

void EngineLoop::PublishLoad() {
  EngineLoad load;
  load.running = scheduler_->num_running();
  load.waiting = scheduler_->num_waiting();
  load.free_pages = scheduler_->num_free_pages();
  load.total_pages = config_.scheduler.num_pages;
  load.kv_usage = scheduler_->kv_usage();
  load.steps = steps_;
  load.preemptions = scheduler_->num_preemptions();
  load.prefix_query_tokens = scheduler_->prefix_query_tokens();
  load.prefix_hit_tokens = scheduler_->prefix_hit_tokens();
  absl::MutexLock lock(&mu_);
  load_ = load;
  in_transit_ = 0;  // every request taken from pending_ is in the scheduler's counts now
  finished_since_publish_ = false;
}

void EngineLoop::Run() {
  for (;;) {
    std::vector<Pending> pending;
    std::vector<std::pair<std::string, scheduler::FinishReason>> aborts;
    bool stop;
    {
      // Only the engine thread changes the scheduler, so this stays true while we wait.
      const bool busy = scheduler_->has_unfinished_requests();
      absl::MutexLock lock(&mu_);
      auto has_work = [this, busy]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return busy || stop_ || !pending_.empty() || !aborts_.empty();
      };
      mu_.Await(absl::Condition(&has_work));
      pending.swap(pending_);
      in_transit_ = static_cast<int32_t>(pending.size());
      aborts.swap(aborts_);
      stop = stop_;
    }
    if (stop) {
      for (Pending& p : pending) {
        Live& live = live_[p.request.request_id];
        live.channel = p.channel;
        live.arrival = p.arrival;
        Finish(p.request.request_id, scheduler::FinishReason::kError,
               absl::UnavailableError("the server is shutting down"));
      }
      std::vector<std::string> ids;
      for (const auto& [id, live] : live_) ids.push_back(id);
      for (const std::string& id : ids) {
        (void)scheduler_->Abort(id);
        Finish(id, scheduler::FinishReason::kError,
               absl::UnavailableError("the server is shutting down"));
      }
      PublishLoad();
      return;
    }
    engine::PhaseTimer timer;  // profiling hooks: a no-op unless StepProfile is enabled
    ApplyPendingWork(pending, aborts);
    if (!aborts.empty()) PublishLoad();  // aborted requests' pages show as free at once

    const absl::Time step_start = absl::Now();
    scheduler::StepPlan plan = scheduler_->Schedule();
    // Submit's queue limit must count the requests just handed over as waiting (or not, once
    // admitted) during this step, not one step later.
    if (!pending.empty()) PublishLoad();
    const absl::Time scheduled_at = absl::Now();
    EngineStepStats& step = step_stats_;
    step.num_scheduled_tokens = plan.total_tokens;
    step.num_scheduled_requests = static_cast<int32_t>(plan.scheduled.size());
    step.num_preempted_requests = static_cast<int32_t>(plan.preempted_ids.size());
    step.num_generated_tokens = 0;
    step.num_prompt_tokens_completed = 0;
    step.queue_seconds.clear();
    step.time_to_first_token_seconds.clear();
    step.inter_token_seconds.clear();
    absl::flat_hash_map<std::string, engine::SampleResult> results;
    absl::flat_hash_map<std::string, int32_t> sampled;
    if (!plan.empty()) {
      for (const scheduler::ScheduledRequest& r : plan.scheduled) {
        auto it = live_.find(r.request_id);
        if (it == live_.end()) continue;
        Live& live = it->second;
        if (live.first_scheduled == absl::InfinitePast()) {
          live.first_scheduled = scheduled_at;
          step.queue_seconds.push_back(absl::ToDoubleSeconds(scheduled_at - live.arrival));
        }
        if (const scheduler::Request* req = scheduler_->GetRequest(r.request_id); req != nullptr) {
          live.stats.num_cached_prompt_tokens = std::max(0, req->num_cached_prompt_tokens());
          live.stats.num_preemptions = req->num_preemptions();
        }
      }
      timer.Lap(engine::StepPhase::kSchedule);
      absl::StatusOr<absl::flat_hash_map<std::string, engine::SampleResult>> executed =
          executor_->Execute(plan);
      timer.Skip();  // Execute attributes its own time
      if (!executed.ok()) {
        base::Log(absl::StrCat("step failed: ", executed.status().message()));
        for (const scheduler::ScheduledRequest& r : plan.scheduled) {
          (void)scheduler_->Abort(r.request_id);
          Finish(r.request_id, scheduler::FinishReason::kError, executed.status());
        }
      } else {
        results = std::move(*executed);
        for (const auto& [id, result] : results) sampled[id] = result.token;
      }
    }
    absl::StatusOr<scheduler::UpdateResult> update = scheduler_->Update(plan, sampled);
    if (!update.ok()) {
      base::Log(absl::StrCat("scheduler update failed: ", update.status().message()));
      for (const scheduler::ScheduledRequest& r : plan.scheduled) {
        (void)scheduler_->Abort(r.request_id);
        Finish(r.request_id, scheduler::FinishReason::kError, update.status());
      }
    } else {
      const absl::Time now = absl::Now();
      for (const scheduler::RequestEvent& event : update->events) {
        auto it = live_.find(event.request_id);
        if (it == live_.end()) continue;  // already finished (e.g. aborted by us)
        Live& live = it->second;
        RequestOutput out;
        if (event.new_token.has_value()) {
          GeneratedToken token;
          token.token_id = *event.new_token;
          if (auto r = results.find(event.request_id); r != results.end()) {
            token.logprob = r->second.logprob;
            if (live.num_logprobs > 0) token.top_logprobs = std::move(r->second.top_logprobs);
          }
          out.tokens.push_back(std::move(token));
          ++live.stats.num_output_tokens;
          ++step.num_generated_tokens;
          if (live.first_token == absl::InfinitePast()) {
            live.first_token = now;
            step.time_to_first_token_seconds.push_back(absl::ToDoubleSeconds(now - live.arrival));
            step.num_prompt_tokens_completed += live.stats.num_prompt_tokens;
          } else {
            step.inter_token_seconds.push_back(absl::ToDoubleSeconds(now - live.last_token));
          }
          live.last_token = now;
        }
        if (!out.tokens.empty()) live.channel->Push(std::move(out));
        if (event.finish_reason.has_value()) {
          Finish(event.request_id, *event.finish_reason, absl::OkStatus());
        }
      }
    }
    ++steps_;
    PublishLoad();
    if (config_.observer != nullptr && !plan.empty()) {
      step.duration_seconds = absl::ToDoubleSeconds(absl::Now() - step_start);
      config_.observer->OnStep(step);
    }
    timer.Lap(engine::StepPhase::kSchedule);
    timer.EndStep();
  }
}

}  // namespace kvserve::serving
