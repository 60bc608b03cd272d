// Element-wise and row-wise CPU kernels of the Llama forward pass. Matrix products are not
// here: they go through engine/primitives.h (oneDNN).
//
// All tensors are f32, row-major, caller-owned. Kernels are vectorized (AVX-512 or AVX2 chosen at
// run time, scalar fallback) and parallelise over rows with OpenMP where that pays.
// Thread-safety: pure functions of their arguments.
#ifndef KVSERVE_ENGINE_KERNELS_H_
#define KVSERVE_ENGINE_KERNELS_H_

#include <cstdint>
#include <vector>

namespace kvserve::engine {

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:]   (out may alias x)
void RmsNorm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps);

// x[i] += y[i]
void AddInPlace(float* x, const float* y, int64_t n);

// Adds bias[c] to every row: x[r, c] += bias[c].
void AddBias(float* x, const float* bias, int64_t rows, int64_t cols);

// SwiGLU: out[r, c] = silu(gate_up[r, c]) * gate_up[r, inter + c] for c < inter, where each
// row of gate_up holds the gate projection followed by the up projection (2 * inter values).
void SwiGlu(const float* gate_up, float* out, int64_t rows, int64_t inter);

// How rotary position embedding pairs the dimensions of a head.
enum class RopeStyle {
  kAdjacentPairs,  // (x[2i], x[2i+1]) rotate together: GGUF `llama` files
  kHalves,         // (x[i], x[i + d/2]) rotate together: NeoX / Hugging Face / GGUF `qwen2`
};

// Precomputed inverse frequencies for RoPE: theta_i = base^(-2i/d) / divisor_i, i < head_dim/2
// (computed in double, stored as f32); the divisors scale the frequencies for long contexts
// (Llama 3's rope_scaling, GGUF rope_freqs.weight) and default to 1. The constructor also caches
// cos/sin of the angles of positions below kCachedPositions (immutable afterwards, so a table may
// be shared across threads); ApplyRope computes other positions on the fly, identically.
struct RopeTable {
  static constexpr int kCachedPositions = 4096;
  // `freq_divisors`: empty, or head_dim / 2 positive values.
  RopeTable(int head_dim, float base, const std::vector<float>& freq_divisors = {});
  int head_dim;
  std::vector<float> inv_freq;
  // [kCachedPositions][head_dim / 2] pairs (cos, sin) of position * inv_freq[i].
  std::vector<float> cos_sin;
};

// Rotates each head of each row in place: x is [rows, num_heads * head_dim], row r at
// position positions[r]. Angles are computed in double for accuracy at long positions.
void ApplyRope(float* x, int64_t rows, int num_heads, const int32_t* positions,
               const RopeTable& table, RopeStyle style);

// Softmax over each row, in place (numerically stable).
void SoftmaxRows(float* x, int64_t rows, int64_t cols);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_KERNELS_H_
