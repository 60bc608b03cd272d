// QuantizedLinear: a Linear (linear.h) over ggml-quantized weights, multiplied by kvserve's own
// kernels (quant_matmul.h). The weight may be several matrices stacked by rows, each keeping
// its own type — a fused Q/K/V of a Q4_K_M file is Q4_K, Q4_K, Q6_K — and x is quantized once
// per activation kind the parts need (Q4_K and Q6_K share one Q8_K copy), then every part
// multiplies it.
//
// Threads: one OpenMP team per Forward quantizes the rows of x, then splits the output rows in
// units of 16, handed out dynamically in runs of contiguous units (each thread streams
// neighbouring weights; a thread descheduled for a moment does not stall the step).
// Every output is computed by one thread with a fixed sequence of operations (see
// quant_matmul.h): results do not depend on m, the thread count or the kernel path.
//
// Ownership: owns its packed weights and scratch. Thread-safety: Forward() from one thread at a
// time (the engine thread).
#ifndef KVSERVE_ENGINE_QUANT_QUANTIZED_LINEAR_H_
#define KVSERVE_ENGINE_QUANT_QUANTIZED_LINEAR_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/linear.h"
#include "engine/quant/activations.h"
#include "engine/quant/quant_matmul.h"

namespace kvserve::engine::quant {

class QuantizedLinear final : public Linear {
 public:
  // One matrix of `n` rows (outputs) of the shared k columns, as ggml blocks of `type`.
  struct Part {
    GgmlType type;
    const uint8_t* rows;
    int64_t n;
  };
  // `bias` (may be null) has the sum of the parts' n values; it is copied, the parts' rows are
  // repacked (not kept). InvalidArgument names what does not fit (a type kvserve cannot
  // multiply, a k that is not a multiple of a part's block).
  static absl::StatusOr<std::unique_ptr<QuantizedLinear>> Create(const std::vector<Part>& parts,
                                                                 int64_t k, QuantIsa isa,
                                                                 const float* bias = nullptr);

  void Forward(const float* x, int64_t m, float* y) override;
  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  std::string Describe() const override;
  // Bytes of packed weights one Forward reads.
  int64_t weight_bytes() const;

 private:
  // Consecutive 16-row units of one matrix, handed to a thread at once (one call into the
  // kernels: their set-up, e.g. AMX's tile configuration, is paid per run).
  static constexpr int64_t kUnitsPerRun = 4;
  struct Run {
    int32_t matrix;  // index into matrices_
    int32_t unit_begin, unit_end;
  };
  QuantizedLinear() = default;

  int64_t k_ = 0, n_ = 0;
  QuantIsa isa_ = QuantIsa::kScalar;
  std::vector<QuantMatrix> matrices_;
  std::vector<int64_t> first_output_;  // of each matrix
  std::vector<Run> runs_;
  std::vector<float> bias_;
  std::array<bool, 3> needs_{};        // by ActKind
  std::array<QuantizedRows, 3> acts_;  // by ActKind, reused across calls
};

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_QUANTIZED_LINEAR_H_
