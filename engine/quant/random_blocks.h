// Random valid ggml blocks, for the kernels' tests and benchmarks (nothing on the serving path
// uses it): random bits everywhere (every bit pattern of quants and packed scales is a valid
// block) except the f16 scales, which get moderate random values so that products stay finite.
#ifndef KVSERVE_ENGINE_QUANT_RANDOM_BLOCKS_H_
#define KVSERVE_ENGINE_QUANT_RANDOM_BLOCKS_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/dtype.h"
#include "engine/quant/formats.h"

namespace kvserve::engine::quant {

// Byte offsets of the f16 fields of a block (d first).
inline std::vector<int> HalfFields(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      return {0, 2};
    case GgmlType::kQ2_K:
      return {80, 82};
    case GgmlType::kQ3_K:
      return {108};
    case GgmlType::kQ6_K:
      return {208};
    default:
      return {0};
  }
}

inline std::vector<uint8_t> RandomRows(const FormatInfo& f, int64_t n, int64_t k,
                                       std::mt19937& rng) {
  const int64_t blocks = n * (k / f.block_k);
  std::vector<uint8_t> data(blocks * f.block_bytes);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  for (int64_t i = 0; i < blocks; ++i) {
    for (int off : HalfFields(f.type)) {
      const uint16_t h = FloatToHalf(scale(rng));
      std::memcpy(data.data() + i * f.block_bytes + off, &h, 2);
    }
  }
  return data;
}

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_RANDOM_BLOCKS_H_
