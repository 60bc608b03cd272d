#include "engine/quant/reference.h"

#include <cmath>
#include <vector>

namespace kvserve::engine::quant {

void ReferenceMatmul(const FormatInfo& f, const uint8_t* rows, int64_t k, int64_t row_begin,
                     int64_t row_end, const QuantizedRows& a, float* y, int64_t ldy) {
  const int64_t blocks = k / f.block_k;
  const int64_t row_bytes = blocks * f.block_bytes;
  std::vector<DecodedBlock> decoded(blocks);
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      DecodeBlock(f, rows + r * row_bytes + b * f.block_bytes, &decoded[b]);
    }
    for (int64_t m = 0; m < a.rows; ++m) {
      const int8_t* qa = a.row_qs(m);
      const int32_t* s16 = a.row_sum16(m);
      float acc = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        const DecodedBlock& w = decoded[b];
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < f.groups(); ++g) {
          const int64_t first = b * f.block_k + g * f.group_k;
          int32_t dot = 0, asum = 0;
          for (int i = 0; i < f.group_k; ++i) {
            dot += QuantValue(f, w.u[g * f.group_k + i]) * qa[first + i];
          }
          for (int i = 0; i < f.group_k / 16; ++i) asum += s16[first / 16 + i];
          isum += w.scale[g] * dot;
          msum += w.min[g] * asum;
        }
        const float da = a.row_d(m)[b];
        acc = std::fma(HalfToFloat(w.d) * da, static_cast<float>(isum), acc);
        if (f.mins) acc = std::fma(-(HalfToFloat(w.d2) * da), static_cast<float>(msum), acc);
        if (f.add_min) acc = std::fma(HalfToFloat(w.d2), a.row_s(m)[b], acc);
      }
      y[m * ldy + (r - row_begin)] = acc;
    }
  }
}

}  // namespace kvserve::engine::quant
