// Activations quantized per block as ggml quantizes them before its integer dot products, so
// that kvserve multiplies the same integers as llama.cpp:
//
//   Q8_0 / Q8_1 (blocks of 32; ggml's x86 quantize_row_q8_0 / q8_1):
//     amax = max |x|, d = amax / 127, stored as f16; q = round_half_even(x * (127 / amax))
//     (q = 0 when amax = 0). Q8_1 also keeps s = f16(d * sum(q)) with the unrounded d.
//   Q8_K (blocks of 256; ggml's quantize_row_q8_K_ref):
//     max = the first x of largest |x|, iscale = -127 / max,
//     q = min(127, round_half_even(iscale * x)), d = 1 / iscale (f32; 0 when max = 0).
//
// QuantizedRows keeps, per row, the int8 quants, each block's scale as the float the dot
// products use (f16 scales decoded), the sums of each 16 quants (which the kernels need for
// offsets and mins) and, for Q8_1, s. ToGgmlBlocks() writes ggml's block bytes (for tests).
//
// Ownership: QuantizedRows owns its buffers and reuses them across calls. Thread-safety: one
// QuantizedRows per thread; Quantize() uses the calling thread only.
#ifndef KVSERVE_ENGINE_QUANT_ACTIVATIONS_H_
#define KVSERVE_ENGINE_QUANT_ACTIVATIONS_H_

#include <cstdint>
#include <vector>

#include "engine/quant/formats.h"
#include "engine/quant/isa.h"

namespace kvserve::engine::quant {

struct QuantizedRows {
  ActKind kind = ActKind::kQ8_0;
  int64_t rows = 0;
  int64_t k = 0;
  std::vector<int8_t> qs;       // rows x k
  std::vector<float> d;         // rows x (k / block): the scale each block's dot products use
  std::vector<int32_t> sum16;   // rows x (k / 16): sums of each 16 quants
  std::vector<float> s;         // Q8_1: rows x (k / 32): the decoded f16 d * sum(q)
  std::vector<uint16_t> d_f16;  // Q8_0/Q8_1: the stored f16 scales (for ToGgmlBlocks)
  std::vector<uint16_t> s_f16;  // Q8_1: the stored f16 s

  int64_t blocks_per_row() const { return k / ActBlockK(kind); }
  const int8_t* row_qs(int64_t r) const { return qs.data() + r * k; }
  const float* row_d(int64_t r) const { return d.data() + r * blocks_per_row(); }
  const int32_t* row_sum16(int64_t r) const { return sum16.data() + r * (k / 16); }
  const float* row_s(int64_t r) const { return s.data() + r * (k / 32); }
};

// Quantizes rows [0, rows) of x ([rows, k] row-major; k a multiple of the block) into `out`,
// with the given path (every path produces the same bits). Rows are independent: a range of
// rows may be quantized by several threads with QuantizeRange.
void Quantize(ActKind kind, const float* x, int64_t rows, int64_t k, QuantIsa isa,
              QuantizedRows* out);
// Sizes `out` for rows x k without filling it; then QuantizeRange fills [row_begin, row_end).
void PrepareQuantized(ActKind kind, int64_t rows, int64_t k, QuantizedRows* out);
void QuantizeRange(const float* x, int64_t row_begin, int64_t row_end, QuantIsa isa,
                   QuantizedRows* out);

// ggml's block bytes for row r (block_q8_0 / block_q8_1 / block_q8_K).
std::vector<uint8_t> ToGgmlBlocks(const QuantizedRows& q, int64_t r);

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_ACTIVATIONS_H_
