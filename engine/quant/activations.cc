#include "engine/quant/activations.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/dtype.h"

namespace kvserve::engine::quant {
namespace {

// Rounds half to even (the default rounding mode, as vcvtps2dq) and saturates to int8 as
// ggml's vpackssdw / vpacksswb do.
inline int8_t RoundToInt8(float v) {
  const float r = std::nearbyint(v);
  return static_cast<int8_t>(std::clamp(r, -128.0f, 127.0f));
}

// One block of 32 (Q8_0 / Q8_1) by the scalar reference. Returns the unrounded d.
float QuantizeBlock32Scalar(const float* x, int8_t* q) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int j = 0; j < 32; ++j) q[j] = RoundToInt8(x[j] * id);
  return d;
}

__attribute__((target("avx2,fma"))) float QuantizeBlock32Avx2(const float* x, int8_t* q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax8 = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, v[i]));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  const float d = amax / 127.0f;
  const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
  __m256i i32[4];
  for (int i = 0; i < 4; ++i) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id));
  const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]);
  const __m256i i16b = _mm256_packs_epi32(i32[2], i32[3]);
  const __m256i i8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i16a, i16b),
                                                 _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), i8);
  return d;
}

// One block of 256 (Q8_K) by the scalar reference. Returns d.
float QuantizeBlock256Scalar(const float* x, int8_t* q) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 256; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax == 0.0f) {
    std::memset(q, 0, 256);
    return 0.0f;
  }
  const float iscale = -127.0f / max;
  for (int j = 0; j < 256; ++j) q[j] = RoundToInt8(std::min(127.0f, iscale * x[j]));
  return 1.0f / iscale;
}

__attribute__((target("avx2,fma"))) float QuantizeBlock256Avx2(const float* x, int8_t* q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax8 = _mm256_setzero_ps();
  for (int i = 0; i < 32; ++i) {
    amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * i)));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  if (amax == 0.0f) {
    std::memset(q, 0, 256);
    return 0.0f;
  }
  // The first value of largest magnitude, with its sign (as the reference's strict '>').
  const __m256 target = _mm256_set1_ps(amax);
  int first = 0;
  for (int i = 0; i < 32; ++i) {
    const int hits = _mm256_movemask_ps(
        _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * i)), target, _CMP_EQ_OQ));
    if (hits != 0) {
      first = 8 * i + __builtin_ctz(static_cast<unsigned>(hits));
      break;
    }
  }
  const float iscale = -127.0f / x[first];
  const __m256 s = _mm256_set1_ps(iscale);
  const __m256 cap = _mm256_set1_ps(127.0f);
  for (int i = 0; i < 8; ++i) {
    __m256i i32[4];
    for (int j = 0; j < 4; ++j) {
      i32[j] = _mm256_cvtps_epi32(
          _mm256_min_ps(cap, _mm256_mul_ps(_mm256_loadu_ps(x + 32 * i + 8 * j), s)));
    }
    const __m256i i8 = _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3])),
        _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * i), i8);
  }
  return 1.0f / iscale;
}

bool UseAvx2(QuantIsa isa) { return isa != QuantIsa::kScalar; }

void QuantizeRow(const float* x, int64_t r, QuantIsa isa, QuantizedRows* out) {
  const int64_t k = out->k;
  int8_t* q = out->qs.data() + r * k;
  const int64_t nb = out->blocks_per_row();
  const bool avx2 = UseAvx2(isa);
  for (int64_t b = 0; b < nb; ++b) {
    if (out->kind == ActKind::kQ8_K) {
      const float d = avx2 ? QuantizeBlock256Avx2(x + 256 * b, q + 256 * b)
                           : QuantizeBlock256Scalar(x + 256 * b, q + 256 * b);
      out->d[r * nb + b] = d;
    } else {
      const float d = avx2 ? QuantizeBlock32Avx2(x + 32 * b, q + 32 * b)
                           : QuantizeBlock32Scalar(x + 32 * b, q + 32 * b);
      const uint16_t dh = FloatToHalf(d);
      out->d_f16[r * nb + b] = dh;
      out->d[r * nb + b] = HalfToFloat(dh);
      if (out->kind == ActKind::kQ8_1) {
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += q[32 * b + j];
        const uint16_t sh = FloatToHalf(d * static_cast<float>(sum));
        out->s_f16[r * nb + b] = sh;
        out->s[r * nb + b] = HalfToFloat(sh);
      }
    }
  }
  int32_t* sums = out->sum16.data() + r * (k / 16);
  for (int64_t g = 0; g < k / 16; ++g) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += q[16 * g + j];
    sums[g] = sum;
  }
}

}  // namespace

void PrepareQuantized(ActKind kind, int64_t rows, int64_t k, QuantizedRows* out) {
  out->kind = kind;
  out->rows = rows;
  out->k = k;
  const int64_t nb = k / ActBlockK(kind);
  if (static_cast<int64_t>(out->qs.size()) < rows * k) out->qs.resize(rows * k);
  if (static_cast<int64_t>(out->d.size()) < rows * nb) out->d.resize(rows * nb);
  if (static_cast<int64_t>(out->sum16.size()) < rows * (k / 16)) out->sum16.resize(rows * (k / 16));
  if (kind != ActKind::kQ8_K && static_cast<int64_t>(out->d_f16.size()) < rows * nb) {
    out->d_f16.resize(rows * nb);
  }
  if (kind == ActKind::kQ8_1) {
    if (static_cast<int64_t>(out->s.size()) < rows * nb) out->s.resize(rows * nb);
    if (static_cast<int64_t>(out->s_f16.size()) < rows * nb) out->s_f16.resize(rows * nb);
  }
}

void QuantizeRange(const float* x, int64_t row_begin, int64_t row_end, QuantIsa isa,
                   QuantizedRows* out) {
  for (int64_t r = row_begin; r < row_end; ++r) QuantizeRow(x + r * out->k, r, isa, out);
}

void Quantize(ActKind kind, const float* x, int64_t rows, int64_t k, QuantIsa isa,
              QuantizedRows* out) {
  PrepareQuantized(kind, rows, k, out);
  QuantizeRange(x, 0, rows, isa, out);
}

std::vector<uint8_t> ToGgmlBlocks(const QuantizedRows& q, int64_t r) {
  std::vector<uint8_t> out;
  const int64_t nb = q.blocks_per_row();
  const int bk = ActBlockK(q.kind);
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* qs = q.row_qs(r) + b * bk;
    auto put = [&out](const void* p, size_t n) {
      const uint8_t* bytes = static_cast<const uint8_t*>(p);
      out.insert(out.end(), bytes, bytes + n);
    };
    if (q.kind == ActKind::kQ8_K) {
      put(&q.d[r * nb + b], 4);
      put(qs, 256);
      for (int g = 0; g < 16; ++g) {
        const int16_t s = static_cast<int16_t>(q.row_sum16(r)[16 * b + g]);
        put(&s, 2);
      }
    } else {
      put(&q.d_f16[r * nb + b], 2);
      if (q.kind == ActKind::kQ8_1) put(&q.s_f16[r * nb + b], 2);
      put(qs, 32);
    }
  }
  return out;
}

}  // namespace kvserve::engine::quant
