// QuantMatrix: one weight matrix of a quantized ggml type, prepared for one kernel path, and
// its product with quantized activations:
//
//   y[m, j] = sum over k of W[j, k] * x[m, k]     (j < n; x quantized per ggml, see activations.h)
//
// The avx2 / avxvnni / avx512 / amx paths repack the weights into tiles of 16 rows (tiles.h);
// the scalar path keeps ggml's blocks and runs the reference (reference.h). Work is split in
// units of 16 output rows, so that threads can share a product: Multiply(units [b, e)) writes
// only those rows' outputs. Each output is computed by one unit, with a fixed sequence of
// operations that does not depend on the number of activation rows or on the path, so results
// are bitwise equal across paths and batch sizes (batch invariance by construction).
//
// Ownership: owns its packed or copied weights. Thread-safety: immutable after Create();
// Multiply() may run concurrently on disjoint units.
#ifndef KVSERVE_ENGINE_QUANT_QUANT_MATMUL_H_
#define KVSERVE_ENGINE_QUANT_QUANT_MATMUL_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/quant/activations.h"
#include "engine/quant/formats.h"
#include "engine/quant/isa.h"
#include "engine/quant/tiles.h"

namespace kvserve::engine::quant {

class QuantMatrix {
 public:
  // `rows`: n rows of k values as ggml blocks of `format`, copied or repacked (not kept).
  // InvalidArgument if k is not a multiple of the format's block or isa is not supported here.
  static absl::StatusOr<QuantMatrix> Create(const FormatInfo& format, const uint8_t* rows,
                                            int64_t n, int64_t k, QuantIsa isa);

  const FormatInfo& format() const { return *format_; }
  QuantIsa isa() const { return isa_; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t units() const { return (n_ + kTileRows - 1) / kTileRows; }
  // Bytes of weights held (what one pass over the matrix reads).
  int64_t bytes() const;

  // y[m * ldy + j] for every activation row m and the outputs j of units [begin, end).
  // `a` must be quantized with format().act, a.k == k().
  void Multiply(const QuantizedRows& a, int64_t unit_begin, int64_t unit_end, float* y,
                int64_t ldy) const;

 private:
  const FormatInfo* format_ = nullptr;
  QuantIsa isa_ = QuantIsa::kScalar;
  int64_t n_ = 0, k_ = 0;
  PackedTiles tiles_;            // SIMD paths
  std::vector<uint8_t> blocks_;  // scalar path: ggml's blocks
};

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_QUANT_MATMUL_H_
