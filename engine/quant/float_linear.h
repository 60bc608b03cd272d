// FloatLinear: y = x · Wᵀ (+ bias) for float weights (f32, or f16 as F16 files store them),
// multiplied by kvserve's own kernels in f32 with one fixed order of operations per output:
//   y[m][n] = fma(w[n][k-1], x[m][k-1], ... fma(w[n][1], x[m][1], fma(w[n][0], x[m][0], 0)))
// then + bias[n]. Every path (scalar reference, AVX2+FMA, AVX-512) computes exactly that, so
// the paths are bitwise equal and a row's result never depends on how many rows the step has
// (batch invariance by construction). oneDNN's f32 matmul does not have that property on every
// CPU: on an AVX2-only Zen 2 its result for a row changes with the row count (1, 2, 3, ...).
//
// Layout: rows in tiles of 16 (rows past n are zero), each tile k-major — the 16 rows' values
// of column j side by side — so one vector load feeds one FMA per activation row, with one
// accumulator lane per output row. The scalar path keeps the plain rows.
//
// Ownership: owns its packed weights. Thread-safety: Forward() for the single engine thread;
// OpenMP threads inside each call.
#ifndef KVSERVE_ENGINE_QUANT_FLOAT_LINEAR_H_
#define KVSERVE_ENGINE_QUANT_FLOAT_LINEAR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/linear.h"
#include "engine/quant/isa.h"
#include "engine/quant/tiles.h"

namespace kvserve::engine::quant {

enum class FloatStorage { kF32, kF16 };
std::string_view FloatStorageName(FloatStorage storage);

class FloatLinear final : public Linear {
 public:
  // w: n rows of k floats (row-major). With kF16 the values are rounded to f16 (exact for
  // values that came from an F16 file). bias: n floats or nullptr.
  static absl::StatusOr<std::unique_ptr<FloatLinear>> Create(const float* w, int64_t n,
                                                             int64_t k, FloatStorage storage,
                                                             QuantIsa isa, const float* bias);

  void Forward(const float* x, int64_t m, float* y) override;
  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  std::string Describe() const override;
  int64_t weight_bytes() const;

  // The kernel paths (the SIMD kernel for QuantIsa isa; avxvnni runs avx2's, amx avx512's).
  // y rows [0, m) for tiles [tile_begin, tile_end). Exposed for tests.
  void MultiplyTiles(const float* x, int64_t m, int64_t tile_begin, int64_t tile_end,
                     float* y) const;

 private:
  FloatLinear() = default;

  int64_t n_ = 0, k_ = 0, tiles_ = 0;
  FloatStorage storage_ = FloatStorage::kF32;
  QuantIsa isa_ = QuantIsa::kScalar;
  std::unique_ptr<uint8_t[], AlignedFree> data_;  // tiles (SIMD paths) or plain rows (scalar)
  int64_t bytes_ = 0;
  std::vector<float> bias_;
};

// The scalar reference for one output: the order stated at the top of this file. w has k
// values of `storage` type.
float FloatDotReference(const void* w, FloatStorage storage, const float* x, int64_t k);

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_FLOAT_LINEAR_H_
