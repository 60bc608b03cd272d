#include "engine/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/attention.h"
#include "engine/kernels.h"
#include "engine/linear_builder.h"
#include "engine/step_profile.h"

namespace kvserve::engine {
namespace {

template <typename T>
void Grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

LlamaModel::LlamaModel(std::shared_ptr<const void> weights_owner, ModelConfig config,
                       LoadOptions options)
    : weights_owner_(std::move(weights_owner)), config_(std::move(config)), options_(options) {}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(std::shared_ptr<const GgufFile> file,
                                                             const LoadOptions& options) {
  absl::StatusOr<ModelConfig> config = ModelConfigFromGguf(*file);
  if (!config.ok()) return config.status();
  const std::unique_ptr<WeightSource> source = MakeGgufWeightSource(*file);
  return LoadFrom(*source, file, *config, options);
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(std::shared_ptr<const HfModel> model,
                                                             const LoadOptions& options) {
  ModelConfig config = model->config();
  // Checkpoints saved with tied embeddings usually omit lm_head.weight.
  if (model->Find("lm_head.weight") == nullptr) config.tied_embeddings = true;
  const std::unique_ptr<WeightSource> source = MakeHfWeightSource(*model);
  return LoadFrom(*source, model, config, options);
}

absl::StatusOr<LlamaModel::Layer> LlamaModel::LoadLayer(const WeightSource& source,
                                                        LinearBuilder& builder, int64_t l) const {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size, q = c.q_size(), kv = c.kv_size(), f = c.intermediate_size;
  const std::string b = absl::StrCat("blk.", l, ".");
  Layer layer;
  absl::StatusOr<std::vector<float>> attn_norm = source.ReadF32(b + "attn_norm.weight", {d});
  if (!attn_norm.ok()) return attn_norm.status();
  layer.attn_norm = *std::move(attn_norm);
  absl::StatusOr<std::vector<float>> ffn_norm = source.ReadF32(b + "ffn_norm.weight", {d});
  if (!ffn_norm.ok()) return ffn_norm.status();
  layer.ffn_norm = *std::move(ffn_norm);
  if (c.qk_norm) {
    for (auto [name, dst] : {std::pair{"attn_q_norm.weight", &layer.q_norm},
                             std::pair{"attn_k_norm.weight", &layer.k_norm}}) {
      absl::StatusOr<std::vector<float>> norm = source.ReadF32(b + name, {c.head_dim});
      if (!norm.ok()) return norm.status();
      *dst = *std::move(norm);
    }
  }
  std::vector<float> qkv_bias;
  if (c.qkv_bias) {
    for (const auto& [name, n] : {std::pair<const char*, int64_t>{"attn_q.bias", q},
                                  {"attn_k.bias", kv},
                                  {"attn_v.bias", kv}}) {
      absl::StatusOr<std::vector<float>> bias = source.ReadF32(b + name, {n});
      if (!bias.ok()) return bias.status();
      qkv_bias.insert(qkv_bias.end(), bias->begin(), bias->end());
    }
  }
  using T = LinearBuilder::Tensor;
  absl::StatusOr<std::unique_ptr<Linear>> qkv = builder.Build(
      {T{b + "attn_q.weight", d, q}, T{b + "attn_k.weight", d, kv}, T{b + "attn_v.weight", d, kv}},
      qkv_bias);
  if (!qkv.ok()) return qkv.status();
  layer.qkv = *std::move(qkv);
  absl::StatusOr<std::unique_ptr<Linear>> out = builder.Build({T{b + "attn_output.weight", q, d}});
  if (!out.ok()) return out.status();
  layer.attn_out = *std::move(out);
  absl::StatusOr<std::unique_ptr<Linear>> gate_up =
      builder.Build({T{b + "ffn_gate.weight", d, f}, T{b + "ffn_up.weight", d, f}});
  if (!gate_up.ok()) return gate_up.status();
  layer.gate_up = *std::move(gate_up);
  absl::StatusOr<std::unique_ptr<Linear>> down = builder.Build({T{b + "ffn_down.weight", f, d}});
  if (!down.ok()) return down.status();
  layer.down = *std::move(down);
  return layer;
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::LoadFrom(const WeightSource& source,
                                                                 std::shared_ptr<const void> owner,
                                                                 const ModelConfig& c,
                                                                 const LoadOptions& options) {
  std::unique_ptr<LlamaModel> m(new LlamaModel(std::move(owner), c, options));
  absl::StatusOr<RawTensor> embd = source.Raw("token_embd.weight", {c.hidden_size, c.vocab_size});
  if (!embd.ok()) return embd.status();
  m->embd_type_ = embd->type;
  m->embd_data_ = embd->data;
  LinearBuilder builder(source, options.weight_dtype, options.isa);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    absl::StatusOr<Layer> layer = m->LoadLayer(source, builder, l);
    if (!layer.ok()) return layer.status();
    m->layers_.push_back(*std::move(layer));
  }
  absl::StatusOr<std::vector<float>> out_norm =
      source.ReadF32("output_norm.weight", {c.hidden_size});
  if (!out_norm.ok()) return out_norm.status();
  m->output_norm_ = *std::move(out_norm);
  absl::StatusOr<std::unique_ptr<Linear>> lm_head = builder.Build(
      {{c.tied_embeddings ? "token_embd.weight" : "output.weight", c.hidden_size, c.vocab_size}});
  if (!lm_head.ok()) return lm_head.status();
  m->lm_head_ = *std::move(lm_head);
  m->weight_summary_ = builder.Summary();
  m->weight_summary_.push_back(
      absl::StrCat("token_embd.weight: ", std::string(GgmlTypeName(m->embd_type_)),
                   ", rows converted to f32 per token"));
  m->rope_ =
      std::make_unique<RopeTable>(static_cast<int>(c.head_dim), c.rope_base, c.rope_freq_divisors);
  return m;
}

KvPoolShape LlamaModel::KvShape(int page_size, int num_pages, KvDType dtype) const {
  KvPoolShape s;
  s.num_layers = static_cast<int>(config_.num_layers);
  s.num_kv_heads = static_cast<int>(config_.num_kv_heads);
  s.head_dim = static_cast<int>(config_.head_dim);
  s.page_size = page_size;
  s.num_pages = num_pages;
  s.dtype = dtype;
  return s;
}

absl::Status LlamaModel::EmbedTokens(absl::Span<const int32_t> ids, float* out) const {
  const int64_t d = config_.hidden_size;
  absl::StatusOr<int64_t> row_bytes = GgmlRowBytes(embd_type_, d);
  if (!row_bytes.ok()) return row_bytes.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    absl::Status s = ConvertToF32(embd_type_, embd_data_ + ids[i] * *row_bytes, out + i * d, d);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::ValidateBatch(const ForwardBatch& batch, const KvPoolShape& pool,
                                       std::vector<AttentionSequence>* seqs,
                                       int64_t* logit_rows) const {
  const ModelConfig& c = config_;
  seqs->clear();
  seqs->reserve(batch.runs.size());
  int64_t rows = 0;
  *logit_rows = 0;
  for (size_t r = 0; r < batch.runs.size(); ++r) {
    const ForwardRun& run = batch.runs[r];
    const int64_t n = run.token_ids.size();
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("run ", r, " has no tokens"));
    if (run.start_position < 0 || run.start_position + n > c.context_length) {
      return absl::InvalidArgumentError(
          absl::StrFormat("run %d covers positions %d..%d, past the context length %d", r,
                          run.start_position, run.start_position + n - 1, c.context_length));
    }
    const int64_t pages_needed = (run.start_position + n + pool.page_size - 1) / pool.page_size;
    if (static_cast<int64_t>(run.page_table.size()) < pages_needed) {
      return absl::InvalidArgumentError(
          absl::StrFormat("run %d needs %d pages for %d positions but its page table has %d", r,
                          pages_needed, run.start_position + n, run.page_table.size()));
    }
    for (int64_t i = 0; i < pages_needed; ++i) {
      if (run.page_table[i] < 0 || run.page_table[i] >= pool.num_pages) {
        return absl::InvalidArgumentError(
            absl::StrFormat("run %d page table entry %d is page %d, outside the pool of %d", r, i,
                            run.page_table[i], pool.num_pages));
      }
    }
    for (int32_t id : run.token_ids) {
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("token id %d is outside the vocabulary [0, %d)", id, c.vocab_size));
      }
    }
    seqs->push_back({rows, n, run.start_position, run.page_table});
    rows += n;
    *logit_rows += run.logits == LogitsMode::kAll ? n : run.logits == LogitsMode::kLast ? 1 : 0;
  }
  return absl::OkStatus();
}

void LlamaModel::PrepareScratch(const ForwardBatch& batch, absl::Span<const AttentionSequence> seqs,
                                int64_t rows) {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size, qs = c.q_size(), kvs = c.kv_size(), f = c.intermediate_size;
  Grow(x_, rows * d);
  Grow(h_, rows * d);
  Grow(qkv_, rows * (qs + 2 * kvs));
  Grow(q_, rows * qs);
  Grow(k_, rows * kvs);
  Grow(v_, rows * kvs);
  Grow(attn_, rows * qs);
  Grow(gate_up_, rows * 2 * f);
  Grow(act_, rows * f);
  Grow(positions_, rows);
  Grow(token_ids_, rows);
  for (size_t r = 0; r < batch.runs.size(); ++r) {
    const ForwardRun& run = batch.runs[r];
    const int64_t row0 = seqs[r].first_row;
    for (size_t i = 0; i < run.token_ids.size(); ++i) {
      positions_[row0 + i] = run.start_position + static_cast<int32_t>(i);
      token_ids_[row0 + i] = run.token_ids[i];
    }
  }
}

void LlamaModel::RunLayer(int64_t l, absl::Span<const AttentionSequence> seqs, int64_t rows,
                          KvPagePool& pool, PhaseTimer& timer) {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size, qs = c.q_size(), kvs = c.kv_size(), f = c.intermediate_size;
  const int64_t qkv_cols = qs + 2 * kvs;
  AttentionShape ashape;
  ashape.num_heads = static_cast<int>(c.num_heads);
  ashape.num_kv_heads = static_cast<int>(c.num_kv_heads);
  ashape.head_dim = static_cast<int>(c.head_dim);
  ashape.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  Layer& layer = layers_[l];

  RmsNorm(x_.data(), layer.attn_norm.data(), h_.data(), rows, d, c.rms_norm_eps);
  timer.Lap(StepPhase::kElementwise);
  layer.qkv->Forward(h_.data(), rows, qkv_.data());
  timer.Lap(StepPhase::kMatmul);
  // Split the fused projection into contiguous Q, K and V.
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = qkv_.data() + r * qkv_cols;
    std::memcpy(q_.data() + r * qs, src, qs * sizeof(float));
    std::memcpy(k_.data() + r * kvs, src + qs, kvs * sizeof(float));
    std::memcpy(v_.data() + r * kvs, src + qs + kvs, kvs * sizeof(float));
  }
  timer.Lap(StepPhase::kCopy);
  if (c.qk_norm) {  // each head's vector normalised on its own: rows x heads vectors of head_dim
    RmsNorm(q_.data(), layer.q_norm.data(), q_.data(), rows * c.num_heads, c.head_dim,
            c.rms_norm_eps);
    RmsNorm(k_.data(), layer.k_norm.data(), k_.data(), rows * c.num_kv_heads, c.head_dim,
            c.rms_norm_eps);
  }
  ApplyRope(q_.data(), rows, ashape.num_heads, positions_.data(), *rope_, c.rope_style);
  ApplyRope(k_.data(), rows, ashape.num_kv_heads, positions_.data(), *rope_, c.rope_style);
  timer.Lap(StepPhase::kElementwise);
  for (const AttentionSequence& seq : seqs) {
    pool.Write(static_cast<int>(l), seq.page_table, positions_.data() + seq.first_row, seq.num_rows,
               k_.data() + seq.first_row * kvs, v_.data() + seq.first_row * kvs);
  }
  timer.Lap(StepPhase::kCopy);
  PagedAttention(pool, static_cast<int>(l), ashape, seqs, q_.data(), attn_.data());
  timer.Lap(StepPhase::kAttention);
  layer.attn_out->Forward(attn_.data(), rows, h_.data());
  timer.Lap(StepPhase::kMatmul);
  AddInPlace(x_.data(), h_.data(), rows * d);

  RmsNorm(x_.data(), layer.ffn_norm.data(), h_.data(), rows, d, c.rms_norm_eps);
  timer.Lap(StepPhase::kElementwise);
  layer.gate_up->Forward(h_.data(), rows, gate_up_.data());
  timer.Lap(StepPhase::kMatmul);
  SwiGlu(gate_up_.data(), act_.data(), rows, f);
  timer.Lap(StepPhase::kElementwise);
  layer.down->Forward(act_.data(), rows, h_.data());
  timer.Lap(StepPhase::kMatmul);
  AddInPlace(x_.data(), h_.data(), rows * d);
  timer.Lap(StepPhase::kElementwise);
}

void LlamaModel::ComputeLogits(const ForwardBatch& batch, absl::Span<const AttentionSequence> seqs,
                               int64_t logit_rows, float* logits, PhaseTimer& timer) {
  const int64_t d = config_.hidden_size;
  // Final norm and LM head only for the rows whose logits are wanted.
  Grow(sel_, logit_rows * d);
  int64_t out_row = 0;
  for (size_t r = 0; r < batch.runs.size(); ++r) {
    const AttentionSequence& seq = seqs[r];
    const LogitsMode mode = batch.runs[r].logits;
    if (mode == LogitsMode::kNone) continue;
    const int64_t first =
        mode == LogitsMode::kAll ? seq.first_row : seq.first_row + seq.num_rows - 1;
    const int64_t count = mode == LogitsMode::kAll ? seq.num_rows : 1;
    std::memcpy(sel_.data() + out_row * d, x_.data() + first * d, count * d * sizeof(float));
    out_row += count;
  }
  timer.Lap(StepPhase::kCopy);
  if (logit_rows == 0) return;
  RmsNorm(sel_.data(), output_norm_.data(), sel_.data(), logit_rows, d, config_.rms_norm_eps);
  timer.Lap(StepPhase::kElementwise);
  lm_head_->Forward(sel_.data(), logit_rows, logits);
  timer.Lap(StepPhase::kLmHead);
}

absl::Status LlamaModel::Forward(const ForwardBatch& batch, KvPagePool& pool,
                                 std::vector<float>* logits) {
  PhaseTimer timer;  // profiling hooks: a no-op unless StepProfile is enabled
  // Validate and lay out the batch: one row per token, runs back to back.
  std::vector<AttentionSequence> seqs;
  int64_t logit_rows = 0;
  if (absl::Status s = ValidateBatch(batch, pool.shape(), &seqs, &logit_rows); !s.ok()) return s;
  logits->resize(logit_rows * config_.vocab_size);
  const int64_t rows = seqs.empty() ? 0 : seqs.back().first_row + seqs.back().num_rows;
  if (rows == 0) return absl::OkStatus();
  PrepareScratch(batch, seqs, rows);
  timer.Lap(StepPhase::kOther);
  absl::Status s = EmbedTokens(absl::MakeConstSpan(token_ids_.data(), rows), x_.data());
  if (!s.ok()) return s;
  timer.Lap(StepPhase::kCopy);
  for (int64_t l = 0; l < config_.num_layers; ++l) RunLayer(l, seqs, rows, pool, timer);
  ComputeLogits(batch, seqs, logit_rows, logits->data(), timer);
  return absl::OkStatus();
}

}  // namespace kvserve::engine
