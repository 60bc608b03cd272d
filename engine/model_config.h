// ModelConfig: the shape and hyper-parameters of a Llama-family decoder, read from GGUF
// metadata (architectures `llama` — which also covers Mistral-style files — and `qwen2`).
//
// Thread-safety: plain value type.
#ifndef KVSERVE_ENGINE_MODEL_CONFIG_H_
#define KVSERVE_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/gguf.h"
#include "engine/kernels.h"

namespace kvserve::engine {

struct ModelConfig {
  std::string architecture;  // "llama" or "qwen2"
  std::string name;          // general.name, or the file name
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;  // embedding length
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // < num_heads for grouped-query attention
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;  // FFN size
  int64_t context_length = 0;
  float rms_norm_eps = 1e-5f;
  float rope_base = 10000.f;
  RopeStyle rope_style = RopeStyle::kAdjacentPairs;
  // RoPE frequency divisors, head_dim / 2 of them (frequency i is base^(-2i/d) / divisor[i]):
  // Llama 3 rope_scaling (from config.json, or GGUF's rope_freqs.weight tensor) or linear
  // scaling. Empty: no scaling.
  std::vector<float> rope_freq_divisors;
  std::string rope_scaling = "none";  // "none", "llama3", "linear", "rope_freqs": for logs
  bool qkv_bias = false;              // qwen2 has biases on Q, K and V
  bool qk_norm = false;               // qwen3: RMSNorm (weights [head_dim]) per head of Q and K
  bool tied_embeddings = false;       // LM head reuses token_embd when output.weight is absent
  // A sliding attention window the file declares (GGUF ARCH.attention.sliding_window, e.g.
  // Mistral 7B v0.1 converted as `llama`; config.json sliding_window), 0 if none. Recorded and
  // logged, not applied: llama.cpp attends to the whole context for the llama, qwen2 and qwen3
  // architectures whatever the file says (tests/reference/check_sliding_window.py), and kvserve
  // gives the same tokens.
  int64_t declared_sliding_window = 0;

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
};

// Llama 3's frequency divisors (transformers' rope_type "llama3", as llama.cpp's converter
// writes them into rope_freqs.weight): with wavelength w_i = 2 pi / base^(-2i/d), L =
// original_context, divisor 1 where w_i < L / high_freq_factor, `factor` where w_i > L /
// low_freq_factor, and in between 1 / ((1 - s) / factor + s) with s = (L / w_i - low) / (high -
// low). InvalidArgument unless factor > 0, original_context > 0 and high > low.
absl::StatusOr<std::vector<float>> Llama3RopeDivisors(int64_t head_dim, double base, double factor,
                                                      double low_freq_factor,
                                                      double high_freq_factor,
                                                      double original_context);

// The largest head dimension a config may declare (real models use 64 to 256): the RoPE tables
// and attention buffers are sized by it before any tensor is read, so a file claiming billions
// must be refused, not allocated for.
inline constexpr int64_t kMaxHeadDim = 4096;

// Reads and validates the config. Errors name the metadata key or tensor at fault, e.g.
// "unsupported architecture 'gpt2'", "missing metadata key 'llama.block_count'",
// "llama.attention.head_count (7) does not divide llama.embedding_length (64)".
absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file);

// Log lines about what the file declares and kvserve does not apply (the declared sliding
// window), empty when there is nothing to say.
std::vector<std::string> ModelConfigNotes(const ModelConfig& c);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_MODEL_CONFIG_H_
