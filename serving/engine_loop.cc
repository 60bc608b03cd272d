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
      shape_(executor_->shape()),
      stats_(config_.observer) {}

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

void EngineLoop::Run() {
  for (;;) {
    Work work = WaitForWork();
    if (work.stop) {
      AbortAll(work.pending);
      return;
    }
    engine::PhaseTimer timer;  // profiling hooks: a no-op unless StepProfile is enabled
    ApplyWork(work);
    Step(/*handed_over=*/!work.pending.empty(), timer);
  }
}

EngineLoop::Work EngineLoop::WaitForWork() {
  Work work;
  // Only the engine thread changes the scheduler, so this stays true while we wait.
  const bool busy = scheduler_->has_unfinished_requests();
  absl::MutexLock lock(&mu_);
  auto has_work = [this, busy]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return busy || stop_ || !pending_.empty() || !aborts_.empty();
  };
  mu_.Await(absl::Condition(&has_work));
  work.pending.swap(pending_);
  in_transit_ = static_cast<int32_t>(work.pending.size());
  work.aborts.swap(aborts_);
  work.stop = stop_;
  return work;
}

void EngineLoop::ApplyWork(Work& work) {
  for (Pending& p : work.pending) {
    const std::string id = p.request.request_id;
    Live& live = live_[id];
    live.channel = p.channel;
    live.num_logprobs = p.request.sampling.num_logprobs;
    live.timeline.arrival = p.arrival;
    live.timeline.stats.num_prompt_tokens = static_cast<int32_t>(p.request.prompt.size());
    executor_->AddSequence(id, p.request.sampling, p.request.prompt);
    auto req = std::make_unique<scheduler::Request>(id, std::move(p.request.prompt),
                                                    std::move(p.request.stop));
    absl::Status s = scheduler_->AddRequest(std::move(req));
    if (!s.ok()) Finish(id, scheduler::FinishReason::kError, s);
  }
  for (const auto& [id, reason] : work.aborts) {
    if (!live_.contains(id)) continue;
    // NotFound means it finished in the meantime; its final output is already out.
    if (scheduler_->Abort(id).ok()) Finish(id, reason);
  }
  if (!work.aborts.empty()) PublishLoad();  // aborted requests' pages show as free at once
}

void EngineLoop::Step(bool handed_over, engine::PhaseTimer& timer) {
  const absl::Time start = absl::Now();
  const scheduler::StepPlan plan = scheduler_->Schedule();
  // Submit's queue limit must count the requests just handed over as waiting (or not, once
  // admitted) during this step, not one step later.
  if (handed_over) PublishLoad();
  stats_.BeginStep(plan, start);
  StepResults results = Execute(plan, timer);
  Publish(plan, results);
  ++steps_;
  PublishLoad();
  stats_.EndStep(plan);
  timer.Lap(engine::StepPhase::kSchedule);
  timer.EndStep();
}

StepResults EngineLoop::Execute(const scheduler::StepPlan& plan, engine::PhaseTimer& timer) {
  if (plan.empty()) return {};
  const absl::Time now = absl::Now();
  for (const scheduler::ScheduledRequest& r : plan.scheduled) {
    auto it = live_.find(r.request_id);
    if (it == live_.end()) continue;
    stats_.Scheduled(it->second.timeline, scheduler_->GetRequest(r.request_id), now);
  }
  timer.Lap(engine::StepPhase::kSchedule);
  absl::StatusOr<StepResults> executed = executor_->Execute(plan);
  timer.Skip();  // Execute attributes its own time
  if (!executed.ok()) {
    base::Log(absl::StrCat("step failed: ", executed.status().message()));
    FailStep(plan, executed.status());
    return {};
  }
  return *std::move(executed);
}

void EngineLoop::Publish(const scheduler::StepPlan& plan, StepResults& results) {
  scheduler::SampledTokens sampled(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].has_value()) sampled[i] = results[i]->token;
  }
  absl::StatusOr<scheduler::UpdateResult> update = scheduler_->Update(plan, sampled);
  if (!update.ok()) {
    base::Log(absl::StrCat("scheduler update failed: ", update.status().message()));
    FailStep(plan, update.status());
    return;
  }
  const absl::Time now = absl::Now();
  for (const scheduler::RequestEvent& event : update->events) PublishEvent(event, results, now);
}

void EngineLoop::PublishEvent(const scheduler::RequestEvent& event, StepResults& results,
                              absl::Time now) {
  auto it = live_.find(event.request_id);
  if (it == live_.end()) return;  // already finished (e.g. aborted by us)
  Live& live = it->second;
  if (event.new_token.has_value()) {
    GeneratedToken token;
    token.token_id = *event.new_token;
    if (event.scheduled_index >= 0 && event.scheduled_index < static_cast<int>(results.size()) &&
        results[event.scheduled_index].has_value()) {
      engine::SampleResult& sampled = *results[event.scheduled_index];
      token.logprob = sampled.logprob;
      if (live.num_logprobs > 0) token.top_logprobs = std::move(sampled.top_logprobs);
    }
    RequestOutput out;
    out.tokens.push_back(std::move(token));
    stats_.TokenPublished(live.timeline, now);
    live.channel->Push(std::move(out));
  }
  if (event.finish_reason.has_value()) Finish(event.request_id, *event.finish_reason);
}

void EngineLoop::FailStep(const scheduler::StepPlan& plan, const absl::Status& error) {
  for (const scheduler::ScheduledRequest& r : plan.scheduled) {
    (void)scheduler_->Abort(r.request_id);
    Finish(r.request_id, scheduler::FinishReason::kError, error);
  }
}

void EngineLoop::AbortAll(std::vector<Pending>& pending) {
  const absl::Status shutdown = absl::UnavailableError("the server is shutting down");
  for (Pending& p : pending) {
    Live& live = live_[p.request.request_id];
    live.channel = p.channel;
    live.timeline.arrival = p.arrival;
    Finish(p.request.request_id, scheduler::FinishReason::kError, shutdown);
  }
  std::vector<std::string> ids;
  for (const auto& [id, live] : live_) ids.push_back(id);
  for (const std::string& id : ids) {
    (void)scheduler_->Abort(id);
    Finish(id, scheduler::FinishReason::kError, shutdown);
  }
  PublishLoad();
}

void EngineLoop::Finish(const std::string& id, scheduler::FinishReason reason, absl::Status error) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  Live live = std::move(it->second);
  live_.erase(it);
  executor_->RemoveSequence(id);
  RequestOutput out;
  out.finished = true;
  out.finish_reason = reason;
  out.error = std::move(error);
  out.stats = StatsRecorder::FinalStats(live.timeline, absl::Now());
  const RequestStats stats = out.stats;
  live.channel->Push(std::move(out));
  stats_.Finished(stats, reason);
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

}  // namespace kvserve::serving
