#include "engine/quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/quant/ggml_blocks.h"

namespace kvserve::engine::quant {
namespace {

// ggml's nearest_int: round half to even.
inline int NearestInt(float v) { return static_cast<int>(std::nearbyint(v)); }

void QuantizeQ8_0(const float* x, BlockQ8_0* y) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = FloatToHalf(d);
  for (int j = 0; j < 32; ++j) y->qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}

void QuantizeQ5_0(const float* x, BlockQ5_0* y) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = FloatToHalf(d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    // (int8_t)(x * id + 16.5) truncates toward zero, as ggml's cast does.
    const uint8_t lo = static_cast<uint8_t>(
        std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f))));
    const uint8_t hi = static_cast<uint8_t>(
        std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f))));
    y->qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
    qh |= ((lo & 0x10u) >> 4) << j;
    qh |= ((hi & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(y->qh, &qh, 4);
}

// ggml's make_qkx2_quants: the scale and min of a group that minimize the weighted error of
// x ~ scale * L - min, L in [0, nmax], trying nstep + 1 candidate scales.
float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                     float* the_min, uint8_t* laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.0f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(NearestInt(iscale * (x[i] - min)), 0, nmax));
    const float diff = scale * L[i] + min - x[i];
    best_error += weights[i] * diff * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
      laux[i] = static_cast<uint8_t>(l);
      sum_l += weights[i] * l;
      sum_l2 += weights[i] * l * l;
      sum_xl += weights[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * laux[i] + this_min - x[i];
      error += weights[i] * diff * diff;
    }
    if (error < best_error) {
      std::copy(laux, laux + n, L);
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *the_min = -min;
  return scale;
}

void QuantizeQ4_K(const float* x, BlockQ4_K* y) {
  uint8_t L[256], laux[32];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] =
        MakeQkx2Quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], laux, -1.0f, 0.1f, 20);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  std::memset(y->scales, 0, sizeof(y->scales));
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = static_cast<uint8_t>(std::min(63, NearestInt(inv_scale * scales[j])));
    const uint8_t lm = static_cast<uint8_t>(std::min(63, NearestInt(inv_min * mins[j])));
    if (j < 4) {
      y->scales[j] = ls;
      y->scales[j + 4] = lm;
    } else {
      y->scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      y->scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      y->scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  y->d = FloatToHalf(max_scale / 63.0f);
  y->dmin = FloatToHalf(max_min / 63.0f);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    Q4KScaleMin(j, y->scales, &sc, &m);
    const float d = HalfToFloat(y->d) * sc;
    if (d == 0.0f) continue;
    const float dm = HalfToFloat(y->dmin) * m;
    for (int ii = 0; ii < 32; ++ii) {
      L[32 * j + ii] =
          static_cast<uint8_t>(std::clamp(NearestInt((x[32 * j + ii] + dm) / d), 0, 15));
    }
  }
  for (int j = 0; j < 4; ++j) {
    for (int l = 0; l < 32; ++l) {
      y->qs[32 * j + l] = static_cast<uint8_t>(L[64 * j + l] | (L[64 * j + l + 32] << 4));
    }
  }
}

}  // namespace

GgmlType QuantTypeForRows(GgmlType wanted, int64_t k) {
  if (wanted == GgmlType::kQ4_K && k % kQK != 0) return GgmlType::kQ5_0;
  return wanted;
}

absl::StatusOr<std::vector<uint8_t>> QuantizeRows(GgmlType type, const float* x, int64_t n,
                                                  int64_t k) {
  const int block = type == GgmlType::kQ4_K ? kQK : kQ32;
  if (k % block != 0 ||
      (type != GgmlType::kQ8_0 && type != GgmlType::kQ5_0 && type != GgmlType::kQ4_K)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot quantize rows of ", k, " values to ",
                                                   std::string(GgmlTypeName(type))));
  }
  const int64_t blocks = n * (k / block);
  std::vector<uint8_t> out;
  switch (type) {
    case GgmlType::kQ8_0:
      out.resize(blocks * sizeof(BlockQ8_0));
      for (int64_t b = 0; b < blocks; ++b) {
        QuantizeQ8_0(x + b * block, reinterpret_cast<BlockQ8_0*>(out.data()) + b);
      }
      break;
    case GgmlType::kQ5_0:
      out.resize(blocks * sizeof(BlockQ5_0));
      for (int64_t b = 0; b < blocks; ++b) {
        QuantizeQ5_0(x + b * block, reinterpret_cast<BlockQ5_0*>(out.data()) + b);
      }
      break;
    default:
      out.resize(blocks * sizeof(BlockQ4_K));
      for (int64_t b = 0; b < blocks; ++b) {
        QuantizeQ4_K(x + b * block, reinterpret_cast<BlockQ4_K*>(out.data()) + b);
      }
      break;
  }
  return out;
}

}  // namespace kvserve::engine::quant
