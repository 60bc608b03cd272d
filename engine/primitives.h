// The one place kvserve talks to oneDNN. Everything else multiplies matrices through Linear.
//
// Linear holds one weight matrix, reordered once at construction into the layout oneDNN's
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
// Ownership: Linear owns its packed weights and cached primitives. Thread-safety: Forward() is
// meant for the single engine thread (the primitive cache is not locked); oneDNN itself uses
// OpenMP threads inside each call.
#ifndef KVSERVE_ENGINE_PRIMITIVES_H_
#define KVSERVE_ENGINE_PRIMITIVES_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"

namespace kvserve::engine {

enum class WeightDType { kF32, kBF16, kInt8 };
std::string_view WeightDTypeName(WeightDType dtype);

// Default weight dtype for this CPU: bf16 where it has AVX-512 BF16, else f32.
WeightDType DefaultWeightDType();

// "f32", "bf16", "int8", or "auto" (= DefaultWeightDType()). InvalidArgument naming the accepted
// values otherwise. (Whether this CPU can run bf16 shows when a Linear is created.)
absl::StatusOr<WeightDType> ParseWeightDType(std::string_view name);

class Linear {
 public:
  // `weight` is [out_features, in_features] row-major f32 (one output per row — how GGUF stores
  // a linear layer's weight). `bias` (may be null) has out_features values. The data is copied.
  // FailedPrecondition for kBF16 where oneDNN has no bf16 matmul (oneDNN 2.x: CPUs without
  // AVX-512); InvalidArgument for a null weight or a non-positive dimension.
  static absl::StatusOr<std::unique_ptr<Linear>> Create(const float* weight, int64_t out_features,
                                                        int64_t in_features, WeightDType dtype,
                                                        const float* bias = nullptr);
  ~Linear();
  Linear(const Linear&) = delete;
  Linear& operator=(const Linear&) = delete;

  // y[m, out_features] = x[m, in_features] · Wᵀ + bias. x and y are f32, row-major, must not
  // overlap. m >= 1.
  void Forward(const float* x, int64_t m, float* y);

  int64_t in_features() const;
  int64_t out_features() const;
  WeightDType dtype() const;
  // Name of the oneDNN implementation chosen for the most recent Forward (for logging).
  std::string_view impl_name() const;

 private:
  struct Impl;
  explicit Linear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_PRIMITIVES_H_
