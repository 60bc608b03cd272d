#include "scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace kvserve::scheduler {

absl::Status ValidateSchedulerConfig(const SchedulerConfig& config) {
  auto positive = [](absl::string_view name, int32_t value) -> absl::Status {
    if (value > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler config: ", name, " must be positive, got ", value));
  };
  for (absl::Status status :
       {positive("max_num_seqs", config.max_num_seqs),
        positive("max_num_batched_tokens", config.max_num_batched_tokens),
        positive("page_size", config.page_size), positive("num_pages", config.num_pages),
        positive("max_model_len", config.max_model_len)}) {
    if (!status.ok()) return status;
  }
  if (config.long_prefill_token_threshold < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler config: long_prefill_token_threshold must be >= 0 (0: no cap), got ",
        config.long_prefill_token_threshold));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerConfig& config) {
  if (absl::Status status = ValidateSchedulerConfig(config); !status.ok()) return status;
  return std::unique_ptr<Scheduler>(new Scheduler(config));
}

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config), kv_(config.page_size, config.num_pages, config.enable_prefix_caching) {}

absl::Status Scheduler::AddRequest(std::unique_ptr<Request> request) {
  if (request == nullptr) return absl::InvalidArgumentError("AddRequest: null request");
  if (request->id().empty()) return absl::InvalidArgumentError("AddRequest: empty request id");
  const std::string& id = request->id();
  if (requests_.contains(id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("request '", id, "' is already queued or running"));
  }
  if (request->num_prompt_tokens() == 0 || request->num_output_tokens() != 0 ||
      request->state() != RequestState::kWaiting) {
    return absl::InvalidArgumentError(
        absl::StrCat("request '", id, "': needs a non-empty prompt and no output yet"));
  }
  if (request->stop().max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request '", id, "': max_tokens must be >= 1, got ", request->stop().max_tokens));
  }
  const int32_t context = request->ContextLength(config_.max_model_len);
  if (request->num_prompt_tokens() >= context) {
    return absl::InvalidArgumentError(
        absl::StrCat("request '", id, "': prompt has ", request->num_prompt_tokens(),
                     " tokens but the context holds ", context, ", leaving no room to generate"));
  }
  // The last sampled token is never computed, so at most (final length - 1) positions need KV.
  const int64_t final_tokens = std::min<int64_t>(
      context, int64_t{request->num_prompt_tokens()} + request->stop().max_tokens);
  const int32_t pages_needed = kv_.PagesFor(static_cast<int32_t>(final_tokens - 1));
  if (pages_needed > kv_.num_pages()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request '", id, "': may need ", pages_needed, " KV pages (", final_tokens - 1,
                     " tokens) but the whole pool has ", kv_.num_pages(), "; lower max_tokens"));
  }
  request->set_arrival_index(next_arrival_index_++);
  Request* raw = request.get();
  requests_.emplace(id, std::move(request));
  waiting_.push_back(raw);
  return absl::OkStatus();
}

absl::Status Scheduler::Abort(absl::string_view request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) {
    return absl::NotFoundError(
        absl::StrCat("abort: request '", request_id, "' is not queued or running"));
  }
  Request* request = it->second.get();
  if (request->state() == RequestState::kRunning) {
    running_.erase(std::find(running_.begin(), running_.end(), request));
  } else {
    auto waiting_it = std::find(waiting_.begin(), waiting_.end(), request);
    KVSERVE_CHECK(waiting_it != waiting_.end());
    waiting_.erase(waiting_it);
  }
  aborted_since_last_update_.push_back(
      RequestEvent{request->id(), std::nullopt, FinishReason::kCancelled});
  Finish(request, FinishReason::kCancelled);
  return absl::OkStatus();
}

int32_t Scheduler::TokensToSchedule(const Request& request, int32_t num_computed,
                                    int32_t budget) const {
  int32_t n = std::min(request.num_tokens() - num_computed, budget);
  if (config_.long_prefill_token_threshold > 0) {
    n = std::min(n, config_.long_prefill_token_threshold);
  }
  return n;
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  plan.finished_ids = std::move(finished_since_last_plan_);
  finished_since_last_plan_.clear();
  int32_t budget = config_.max_num_batched_tokens;

  // 1. Running requests: those decoding (one token left to compute) first, then those still
  // prefilling, each group oldest admission first, so a long prompt's chunks never take the
  // budget from streams that are producing tokens. Victims come from the back of that order,
  // which holds only requests not yet scheduled this step (or the current one), so no scheduled
  // request ever loses its pages.
  std::vector<Request*> order = DecodeFirstOrder();
  bool preempted = false;
  for (size_t i = 0; i < order.size() && budget > 0;) {
    Request* request = order[i];
    const int32_t n = TokensToSchedule(*request, request->num_computed_tokens(), budget);
    KVSERVE_CHECK(n > 0);  // a running request always has a token to compute
    bool scheduled = true;
    while (!kv_.AllocateSlots(*request, n, {})) {
      Request* victim = order.back();
      order.pop_back();
      running_.erase(std::find(running_.begin(), running_.end(), victim));
      Preempt(victim, plan);
      preempted = true;
      if (victim == request) {
        scheduled = false;
        break;
      }
    }
    if (!scheduled) break;  // it was the last in order; nobody after it is left
    AddToPlan(*request, n, plan);
    budget -= n;
    ++i;
  }

  // 2. Waiting requests, first come first served, unless pages ran short this step.
  while (!preempted && !waiting_.empty() && budget > 0 &&
         static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    Request* request = waiting_.front();
    const ComputedPrefix prefix = kv_.GetComputedPrefix(*request);
    const int32_t n = TokensToSchedule(*request, prefix.num_tokens, budget);
    KVSERVE_CHECK(n > 0);
    if (!kv_.AllocateSlots(*request, n, prefix.pages)) break;
    waiting_.pop_front();
    request->set_num_computed_tokens(prefix.num_tokens);
    if (request->num_cached_prompt_tokens() < 0) {
      request->set_num_cached_prompt_tokens(
          std::min(prefix.num_tokens, request->num_prompt_tokens()));
    }
    request->set_state(RequestState::kRunning);
    running_.push_back(request);
    AddToPlan(*request, n, plan);
    budget -= n;
  }
  return plan;
}

std::vector<Request*> Scheduler::DecodeFirstOrder() const {
  std::vector<Request*> order(running_.begin(), running_.end());
  std::stable_partition(order.begin(), order.end(), [](const Request* request) {
    return request->num_tokens() - request->num_computed_tokens() == 1;
  });
  return order;
}

void Scheduler::Preempt(Request* request, StepPlan& plan) {
  kv_.Free(*request);
  request->set_num_computed_tokens(0);
  request->set_state(RequestState::kPreempted);
  request->CountPreemption();
  ++num_preemptions_;
  waiting_.push_front(request);
  plan.preempted_ids.push_back(request->id());
}

void Scheduler::AddToPlan(const Request& request, int32_t num_tokens, StepPlan& plan) const {
  ScheduledRequest scheduled;
  scheduled.request_id = request.id();
  scheduled.start_position = request.num_computed_tokens();
  const absl::Span<const int32_t> tokens =
      request.all_token_ids().subspan(scheduled.start_position, num_tokens);
  scheduled.token_ids.assign(tokens.begin(), tokens.end());
  const absl::Span<const PageId> pages = kv_.PageTable(request.id());
  scheduled.page_table.assign(pages.begin(), pages.end());
  scheduled.sample = scheduled.start_position + num_tokens == request.num_tokens();
  plan.total_tokens += num_tokens;
  plan.scheduled.push_back(std::move(scheduled));
}

void Scheduler::Finish(Request* request, FinishReason reason) {
  kv_.Free(*request);
  request->set_state(FinishedStateFor(reason));
  finished_since_last_plan_.push_back(request->id());
  const std::string id = request->id();  // erase() destroys *request
  requests_.erase(id);
}

absl::StatusOr<UpdateResult> Scheduler::Update(const StepPlan& plan, const SampledTokens& sampled) {
  // Validate everything first so a bad call changes nothing.
  std::vector<Request*> live(plan.scheduled.size(), nullptr);
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const ScheduledRequest& step = plan.scheduled[i];
    auto it = requests_.find(step.request_id);
    if (it == requests_.end()) continue;  // aborted after Schedule()
    Request* request = it->second.get();
    const int32_t end = step.start_position + static_cast<int32_t>(step.token_ids.size());
    if (request->state() != RequestState::kRunning ||
        request->num_computed_tokens() != step.start_position || end > request->num_tokens()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Update: the plan for request '", step.request_id,
                       "' does not match its state; pass the plan of the last Schedule() once"));
    }
    if (step.sample && (i >= sampled.size() || !sampled[i].has_value())) {
      return absl::InvalidArgumentError(
          absl::StrCat("Update: no sampled token for request '", step.request_id, "'"));
    }
    live[i] = request;
  }

  UpdateResult result;
  result.events = std::move(aborted_since_last_update_);
  aborted_since_last_update_.clear();
  absl::flat_hash_map<const Request*, FinishReason> finished;
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    Request* request = live[i];
    if (request == nullptr) continue;
    const ScheduledRequest& step = plan.scheduled[i];
    request->set_num_computed_tokens(step.start_position +
                                     static_cast<int32_t>(step.token_ids.size()));
    kv_.CacheComputedPages(*request);
    if (!step.sample) continue;
    const int32_t token = *sampled[i];
    request->AppendOutputToken(token);
    RequestEvent event{request->id(), token, request->CheckStop(config_.max_model_len),
                       static_cast<int32_t>(i)};
    if (event.finish_reason.has_value()) finished.emplace(request, *event.finish_reason);
    result.events.push_back(std::move(event));
  }
  if (!finished.empty()) {
    std::vector<Request*> to_finish;  // in admission order, for a deterministic finished_ids
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [&](Request* request) {
                                    if (!finished.contains(request)) return false;
                                    to_finish.push_back(request);
                                    return true;
                                  }),
                   running_.end());
    for (Request* request : to_finish) Finish(request, finished.at(request));
  }
  return result;
}

const Request* Scheduler::GetRequest(absl::string_view request_id) const {
  auto it = requests_.find(request_id);
  return it == requests_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Scheduler::RunningIds() const {
  std::vector<std::string> ids;
  for (const Request* request : running_) ids.push_back(request->id());
  return ids;
}

std::vector<std::string> Scheduler::WaitingIds() const {
  std::vector<std::string> ids;
  for (const Request* request : waiting_) ids.push_back(request->id());
  return ids;
}

}  // namespace kvserve::scheduler
