// LinearBuilder: makes each Linear of a model from its tensors, as --weight-dtype asks (see
// WeightDType in primitives.h), and keeps count of what each tensor type became, for the load
// log: quantized tensors go to QuantizedLinear (kvserve's kernels, on the chosen ISA path) or
// are dequantized for oneDNN; float tensors go to oneDNN or are quantized at load.
//
// Tensors multiplied together (Q, K and V; gate and up) are built as one Linear whose rows are
// the tensors' rows stacked; each keeps its own type where it stays quantized.
//
// Ownership: refers to the WeightSource, which must outlive it; the Linears it returns own
// their weights. Thread-safety: one thread.
#ifndef KVSERVE_ENGINE_LINEAR_BUILDER_H_
#define KVSERVE_ENGINE_LINEAR_BUILDER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/linear.h"
#include "engine/primitives.h"
#include "engine/quant/isa.h"
#include "engine/weight_source.h"

namespace kvserve::engine {

class LinearBuilder {
 public:
  LinearBuilder(const WeightSource& source, WeightDType dtype, quant::QuantIsa isa);

  // A weight in ggml order: dims {k, n} (k inputs, n outputs).
  struct Tensor {
    std::string name;
    int64_t k = 0;
    int64_t n = 0;
  };
  // The tensors stacked by rows (all with the same k), plus an optional bias of sum(n) floats.
  absl::StatusOr<std::unique_ptr<Linear>> Build(const std::vector<Tensor>& tensors,
                                                const std::vector<float>& bias = {});

  // One line per outcome, e.g. "Q4_K: 72 tensors kept quantized (Q4_K x Q8_K, avx512)".
  std::vector<std::string> Summary() const;

 private:
  absl::StatusOr<std::unique_ptr<Linear>> BuildQuantized(const std::vector<Tensor>& tensors,
                                                         const std::vector<RawTensor>& raws,
                                                         const std::vector<float>& bias);
  absl::StatusOr<std::unique_ptr<Linear>> BuildFloat(const std::vector<Tensor>& tensors,
                                                     const std::vector<RawTensor>& raws,
                                                     const std::vector<float>& bias,
                                                     WeightDType dtype);

  const WeightSource& source_;
  const WeightDType dtype_;
  const quant::QuantIsa isa_;
  std::map<std::string, int> outcomes_;  // "Q4_K: kept quantized (...)" -> tensors
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_LINEAR_BUILDER_H_
