// The scalar reference of the quantized matmul, over the weights as ggml stores them (no
// repacking), for one output at a time:
//
//   acc = 0
//   for each block b of the row:
//     isum = sum over groups g of scale[g] * sum_{i in g} v(u[i]) * a[i]        (exact int32)
//     msum = sum over groups g of min[g] * sum_{i in g} a[i]                    (mins formats)
//     acc = fma(d * da, float(isum), acc)
//     acc = fma(-(d2 * da), float(msum), acc)                                   (mins formats)
//     acc = fma(d2, s, acc)                                                     (Q4_1, Q5_1)
//
// with d, d2 the block's f16 scales, da the activation block's scale and s its Q8_1 sum.
// Every SIMD path performs exactly these float operations per output, so it equals this
// function bit for bit. It is also the `scalar` path of QuantMatrix.
//
// Thread-safety: pure.
#ifndef KVSERVE_ENGINE_QUANT_REFERENCE_H_
#define KVSERVE_ENGINE_QUANT_REFERENCE_H_

#include <cstdint>

#include "engine/quant/activations.h"
#include "engine/quant/formats.h"

namespace kvserve::engine::quant {

// y[m * ldy + (r - row_begin)] for weight rows [row_begin, row_end) of `rows` (ggml blocks,
// k values per row) and every activation row m of `a` (quantized with format.act).
void ReferenceMatmul(const FormatInfo& format, const uint8_t* rows, int64_t k, int64_t row_begin,
                     int64_t row_end, const QuantizedRows& a, float* y, int64_t ldy);

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_REFERENCE_H_
