#include "serving/model_executor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/step_profile.h"

namespace kvserve::serving {

absl::StatusOr<std::unique_ptr<ModelExecutor>> ModelExecutor::Create(
    std::unique_ptr<engine::LlamaModel> model, int32_t page_size, int32_t num_pages,
    engine::KvDType kv_dtype) {
  absl::StatusOr<std::unique_ptr<engine::KvPagePool>> pool =
      engine::KvPagePool::Create(model->KvShape(page_size, num_pages, kv_dtype));
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<ModelExecutor>(new ModelExecutor(std::move(model), std::move(*pool)));
}

int32_t ModelExecutor::PagesForBytes(const engine::LlamaModel& model, int32_t page_size,
                                     engine::KvDType kv_dtype, int64_t bytes) {
  const size_t page_bytes = engine::KvPagePool::PageBytes(model.KvShape(page_size, 1, kv_dtype));
  return static_cast<int32_t>(bytes / static_cast<int64_t>(page_bytes));
}

ModelExecutor::ModelExecutor(std::unique_ptr<engine::LlamaModel> model,
                             std::unique_ptr<engine::KvPagePool> pool)
    : model_(std::move(model)), pool_(std::move(pool)) {}

ExecutorShape ModelExecutor::shape() const {
  ExecutorShape s;
  s.page_size = pool_->shape().page_size;
  s.num_pages = pool_->shape().num_pages;
  s.vocab_size = static_cast<int32_t>(model_->config().vocab_size);
  s.context_length = static_cast<int32_t>(model_->config().context_length);
  return s;
}

void ModelExecutor::AddSequence(const std::string& request_id, const engine::SamplingParams& params,
                                absl::Span<const int32_t> prompt) {
  Sequence& seq = sequences_[request_id];
  seq.params = params;
  seq.state = std::make_unique<engine::SamplerState>(
      params.seed, prompt,
      params.constraint != nullptr ? params.constraint->NewMatcher() : nullptr);
}

void ModelExecutor::RemoveSequence(const std::string& request_id) { sequences_.erase(request_id); }

absl::StatusOr<StepResults> ModelExecutor::Execute(const scheduler::StepPlan& plan) {
  engine::PhaseTimer timer;  // profiling hooks: a no-op unless StepProfile is enabled
  engine::ForwardBatch batch;
  batch.runs.reserve(plan.scheduled.size());
  std::vector<const engine::SamplingParams*> params;
  std::vector<engine::SamplerState*> states;
  std::vector<size_t> sampled_rows;  // index in plan.scheduled of each sampled row
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const scheduler::ScheduledRequest& r = plan.scheduled[i];
    engine::ForwardRun run;
    run.token_ids = r.token_ids;
    run.start_position = r.start_position;
    run.page_table = r.page_table;
    run.logits = r.sample ? engine::LogitsMode::kLast : engine::LogitsMode::kNone;
    batch.runs.push_back(run);
    if (r.sample) {
      auto it = sequences_.find(r.request_id);
      if (it == sequences_.end()) {
        return absl::InternalError(
            absl::StrCat("request '", r.request_id, "' has no sampling state"));
      }
      params.push_back(&it->second.params);
      states.push_back(it->second.state.get());
      sampled_rows.push_back(i);
    }
  }
  StepResults out(plan.scheduled.size());
  if (batch.runs.empty()) return out;
  timer.Lap(engine::StepPhase::kSchedule);
  absl::Status s = model_->Forward(batch, *pool_, &logits_);
  timer.Skip();  // Forward attributes its own time
  if (!s.ok()) return s;
  if (sampled_rows.empty()) return out;
  std::vector<engine::SampleResult> results(sampled_rows.size());
  engine::SampleBatch(logits_, static_cast<int32_t>(model_->config().vocab_size), params, states,
                      absl::MakeSpan(results));
  for (size_t k = 0; k < results.size(); ++k) {
    states[k]->Accept(results[k].token);
    out[sampled_rows[k]] = std::move(results[k]);
  }
  timer.Lap(engine::StepPhase::kSampling);
  return out;
}

}  // namespace kvserve::serving
