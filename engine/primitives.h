// The one place kvserve talks to oneDNN: OneDnnLinear, the Linear (linear.h) of float weights.
//
// OneDnnLinear holds one weight matrix, reordered once at construction into the layout oneDNN's
// fastest matmul kernel for this CPU prefers (format_tag::any), in f32, bf16 or int8. Forward()
// computes y = x · Wᵀ (+ bias) for any number of rows; primitives are created lazily per row
// count and cached.
//
// int8: each weight row (output channel) is quantized symmetrically to s8 in [-63, 63] with
// scale max|w_row| / 63 (7 bits, not 8: without VNNI, oneDNN's u8·s8 kernels add pairs of
// products in saturating s16, and 2·255·127 overflows it while 2·255·63 does not). Each call
// quantizes every row of x symmetrically with its own scale max|x_row| / 127 into u8 around a
// fixed zero point of 128; oneDNN computes the exact s32 products, and a vectorized epilogue
// removes the zero point, applies row scale × channel scale and adds the bias in f32.
//
// Ownership: OneDnnLinear owns its packed weights and cached primitives. Thread-safety: Forward()
// is meant for the single engine thread (the primitive cache is not locked); oneDNN itself uses
// OpenMP threads inside each call.
#ifndef KVSERVE_ENGINE_PRIMITIVES_H_
#define KVSERVE_ENGINE_PRIMITIVES_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/linear.h"

namespace kvserve::engine {

// --weight-dtype: how a model's matrices are stored and multiplied.
//   auto  quantized tensors stay as stored (quant/ kernels); float tensors take
//         DefaultFloatWeightDType()
//   f32, f16  every tensor, quantized ones dequantized first, is kept in that type and multiplied
//         in f32 by kvserve's own kernels (quant/float_linear.h): batch-invariant on every CPU
//   bf16, int8  every tensor, dequantized first if quantized, goes to oneDNN in that type
//         (opt-in: oneDNN's results depend on the row count, so these are not batch-invariant)
//   q8_0, q4_k  float tensors are quantized at load with ggml's reference quantizers (q4_k falls
//         back to Q5_0 where rows are not a multiple of 256); quantized tensors stay as stored
enum class WeightDType { kAuto, kF32, kF16, kBF16, kInt8, kQ8_0, kQ4_K };
std::string_view WeightDTypeName(WeightDType dtype);

// What float tensors become under `auto`: f16 tensors stay f16, every other float tensor
// becomes f32, both on kvserve's kernels. oneDNN's bf16 matmul was found not to be
// batch-invariant on an AVX-512 BF16 / AMX machine, and its f32 matmul not on an AVX2 Zen 2
// (its kernels depend on the row count); kvserve's float kernels fix one order per output.
// The fast path for float checkpoints is `--weight-dtype q8_0`. (This returns the type for
// tensors that are not f16.)
WeightDType DefaultFloatWeightDType();

// One of the names above. InvalidArgument naming the accepted values otherwise. (Whether this
// CPU can run bf16 shows when a Linear is created.)
absl::StatusOr<WeightDType> ParseWeightDType(std::string_view name);

class OneDnnLinear final : public Linear {
 public:
  // `weight` is [out_features, in_features] row-major f32 (one output per row — how GGUF stores
  // a linear layer's weight). `bias` (may be null) has out_features values. The data is copied.
  // FailedPrecondition for kBF16 where oneDNN has no bf16 matmul (oneDNN 2.x: CPUs without
  // AVX-512); InvalidArgument for a null weight or a non-positive dimension.
  static absl::StatusOr<std::unique_ptr<OneDnnLinear>> Create(const float* weight,
                                                              int64_t out_features,
                                                              int64_t in_features,
                                                              WeightDType dtype,
                                                              const float* bias = nullptr);
  ~OneDnnLinear() override;
  OneDnnLinear(const OneDnnLinear&) = delete;
  OneDnnLinear& operator=(const OneDnnLinear&) = delete;

  void Forward(const float* x, int64_t m, float* y) override;
  int64_t in_features() const override;
  int64_t out_features() const override;
  std::string Describe() const override;

  WeightDType dtype() const;
  // Name of the oneDNN implementation chosen for the most recent Forward (for logging).
  std::string_view impl_name() const;
  // Row counts whose oneDNN primitives are cached now (at most 64: least recently used go).
  size_t cached_row_counts() const;

 private:
  struct Impl;
  explicit OneDnnLinear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_PRIMITIVES_H_
