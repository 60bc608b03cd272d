// Linear: y = x · Wᵀ (+ bias) for one weight matrix, the one operation every layer of the
// model multiplies through. Three kinds implement it:
//   FloatLinear      (quant/float_linear.h)      f32/f16 weights by kvserve's own kernels (default
//                                                for float tensors; batch-invariant)
//   QuantizedLinear  (quant/quantized_linear.h)  ggml-quantized weights by kvserve's own kernels
//   OneDnnLinear     (primitives.h)              bf16 or int8 weights by oneDNN (opt-in)
//
// Ownership: a Linear owns its weights. Thread-safety: Forward() is for the single engine
// thread; implementations use OpenMP threads inside each call.
#ifndef KVSERVE_ENGINE_LINEAR_H_
#define KVSERVE_ENGINE_LINEAR_H_

#include <cstdint>
#include <string>

namespace kvserve::engine {

class Linear {
 public:
  virtual ~Linear() = default;

  // y[m, out_features] = x[m, in_features] · Wᵀ + bias. x and y are f32, row-major, must not
  // overlap. m >= 1. A row's outputs never depend on the other rows.
  virtual void Forward(const float* x, int64_t m, float* y) = 0;

  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  // What multiplies, for logs: "oneDNN f32 brg:avx512_core", "Q4_K x Q8_K avx512", ...
  virtual std::string Describe() const = 0;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_LINEAR_H_
