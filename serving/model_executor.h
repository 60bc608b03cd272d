// ModelExecutor: the StepExecutor backed by a real LlamaModel, its KvPagePool and the sampler.
// It turns a StepPlan into one ForwardBatch (each scheduled request a run with its page table),
// then samples every row that needs a token with that request's own SamplerState.
//
// Ownership: owns the model, the pool and the sampler states. Thread-safety: engine thread only.
#ifndef KVSERVE_SERVING_MODEL_EXECUTOR_H_
#define KVSERVE_SERVING_MODEL_EXECUTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/kv_page_pool.h"
#include "engine/llama_model.h"
#include "engine/sampling.h"
#include "serving/step_executor.h"

namespace kvserve::serving {

class ModelExecutor : public StepExecutor {
 public:
  // A pool of `num_pages` pages of `page_size` tokens in `kv_dtype`.
  static absl::StatusOr<std::unique_ptr<ModelExecutor>> Create(
      std::unique_ptr<engine::LlamaModel> model, int32_t page_size, int32_t num_pages,
      engine::KvDType kv_dtype);

  // How many pages fit in `bytes` of KV memory for this model.
  static int32_t PagesForBytes(const engine::LlamaModel& model, int32_t page_size,
                               engine::KvDType kv_dtype, int64_t bytes);

  ExecutorShape shape() const override;
  void AddSequence(const std::string& request_id, const engine::SamplingParams& params,
                   absl::Span<const int32_t> prompt) override;
  void RemoveSequence(const std::string& request_id) override;
  absl::StatusOr<StepResults> Execute(const scheduler::StepPlan& plan) override;

  const engine::LlamaModel& model() const { return *model_; }
  const engine::KvPagePool& pool() const { return *pool_; }

 private:
  struct Sequence {
    engine::SamplingParams params;
    std::unique_ptr<engine::SamplerState> state;
  };
  ModelExecutor(std::unique_ptr<engine::LlamaModel> model,
                std::unique_ptr<engine::KvPagePool> pool);

  std::unique_ptr<engine::LlamaModel> model_;
  std::unique_ptr<engine::KvPagePool> pool_;
  absl::flat_hash_map<std::string, Sequence> sequences_;
  std::vector<float> logits_;
};

}  // namespace kvserve::serving

#endif  // KVSERVE_SERVING_MODEL_EXECUTOR_H_
