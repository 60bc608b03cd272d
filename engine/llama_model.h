// LlamaModel: the weights of a Llama-family decoder and its batched forward pass.
//
// One Forward() call runs a batch of token runs from several sequences as one activation
// matrix, so every weight matrix is read once per step for the whole batch. Each run brings
// its own page table into the KvPagePool: its new keys/values are written there and its
// queries attend to everything its sequence has cached.
//
// Ownership: owns its packed weights; keeps the model file (a GgufFile or an HfModel: the
// embedding table is read from its mapping row by row) alive through a shared_ptr. The KvPagePool
// is the caller's. Thread-safety: Forward() must be called from one thread at a time (the engine
// thread); it uses OpenMP/oneDNN threads internally.
#ifndef KVSERVE_ENGINE_LLAMA_MODEL_H_
#define KVSERVE_ENGINE_LLAMA_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/attention.h"
#include "engine/gguf.h"
#include "engine/hf_model.h"
#include "engine/kv_page_pool.h"
#include "engine/linear.h"
#include "engine/model_config.h"
#include "engine/primitives.h"
#include "engine/quant/isa.h"
#include "engine/step_profile.h"

namespace kvserve::engine {

// Which positions of a run need logits.
enum class LogitsMode {
  kNone,  // a prefill chunk that is not the last: only its keys/values matter
  kLast,  // the usual case: sample the next token after the run
  kAll,   // every position (reference checks, prompt logprobs)
};

// Consecutive tokens of one sequence computed in a step.
struct ForwardRun {
  absl::Span<const int32_t> token_ids;
  int32_t start_position = 0;            // position of token_ids[0]; earlier ones are cached
  absl::Span<const int32_t> page_table;  // pages covering positions [0, start + size)
  LogitsMode logits = LogitsMode::kLast;
};

struct ForwardBatch {
  std::vector<ForwardRun> runs;
};

class WeightSource;   // weight_source.h
class LinearBuilder;  // linear_builder.h

struct LoadOptions {
  WeightDType weight_dtype = WeightDType::kAuto;
  // The quantized kernels' instruction-set path (the best this CPU has unless KVSERVE_ISA caps
  // it).
  quant::QuantIsa isa = quant::DefaultQuantIsa();
};

class LlamaModel {
 public:
  // Validates every tensor's presence, type and shape against the config; errors name the
  // tensor ("tensor 'blk.3.ffn_up.weight' has shape [64, 100], expected [64, 128]").
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(std::shared_ptr<const GgufFile> file,
                                                          const LoadOptions& options);
  // The same from a Hugging Face folder (HF tensor names; Q/K in rotate-halves order). Errors
  // name the HF tensor ("tensor 'model.layers.0.mlp.up_proj.weight' has shape ...").
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(std::shared_ptr<const HfModel> model,
                                                          const LoadOptions& options);

  const ModelConfig& config() const { return config_; }
  WeightDType weight_dtype() const { return options_.weight_dtype; }
  // What each tensor type became at load, one line each ("Q4_K: 72 tensors kept quantized
  // (Q4_K x Q8_K, avx512 kernels)"), for the load log.
  const std::vector<std::string>& weight_summary() const { return weight_summary_; }

  // The KV pool shape this model needs for `num_pages` pages of `page_size` tokens.
  KvPoolShape KvShape(int page_size, int num_pages, KvDType dtype) const;

  // Runs the batch. `logits` receives one row of vocab_size floats per requested position, in
  // run order (per each run's LogitsMode). InvalidArgument for token
  // ids out of range, positions past the context, or page tables too short.
  absl::Status Forward(const ForwardBatch& batch, KvPagePool& pool, std::vector<float>* logits);

 private:
  struct Layer {
    std::vector<float> attn_norm;
    std::vector<float> q_norm, k_norm;  // [head_dim] each, when config.qk_norm
    std::unique_ptr<Linear> qkv;        // [q; k; v] rows fused, with bias for qwen2
    std::unique_ptr<Linear> attn_out;
    std::vector<float> ffn_norm;
    std::unique_ptr<Linear> gate_up;  // [gate; up] rows fused
    std::unique_ptr<Linear> down;
  };

  LlamaModel(std::shared_ptr<const void> weights_owner, ModelConfig config, LoadOptions options);
  static absl::StatusOr<std::unique_ptr<LlamaModel>> LoadFrom(const WeightSource& source,
                                                              std::shared_ptr<const void> owner,
                                                              const ModelConfig& config,
                                                              const LoadOptions& options);
  absl::StatusOr<Layer> LoadLayer(const WeightSource& source, LinearBuilder& builder,
                                  int64_t l) const;
  absl::Status EmbedTokens(absl::Span<const int32_t> ids, float* out) const;
  // The pieces of Forward(): checks every run against the model and the pool and lays the runs
  // out as rows (InvalidArgument naming the run otherwise); sizes the scratch buffers and fills
  // positions_ / token_ids_; one decoder layer over x_; the final norm and LM head of the rows
  // whose logits are wanted.
  absl::Status ValidateBatch(const ForwardBatch& batch, const KvPoolShape& pool,
                             std::vector<AttentionSequence>* seqs, int64_t* logit_rows) const;
  void PrepareScratch(const ForwardBatch& batch, absl::Span<const AttentionSequence> seqs,
                      int64_t rows);
  void RunLayer(int64_t l, absl::Span<const AttentionSequence> seqs, int64_t rows, KvPagePool& pool,
                PhaseTimer& timer);
  void ComputeLogits(const ForwardBatch& batch, absl::Span<const AttentionSequence> seqs,
                     int64_t logit_rows, float* logits, PhaseTimer& timer);

  std::shared_ptr<const void> weights_owner_;  // the GgufFile or HfModel mapping embd_data_
  ModelConfig config_;
  LoadOptions options_;
  GgmlType embd_type_ = GgmlType::kF32;
  const uint8_t* embd_data_ = nullptr;  // [vocab, hidden] rows, in the mapping
  std::vector<Layer> layers_;
  std::vector<float> output_norm_;
  std::unique_ptr<Linear> lm_head_;
  std::unique_ptr<RopeTable> rope_;
  std::vector<std::string> weight_summary_;

  // Scratch buffers reused across steps (grown as needed).
  std::vector<float> x_, h_, qkv_, q_, k_, v_, attn_, gate_up_, act_, sel_;
  std::vector<int32_t> positions_, token_ids_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_LLAMA_MODEL_H_
