// Thin vector wrappers over f32 lanes, one per instruction set, so each kernel algorithm is
// written once (in a .inc file) and compiled per ISA. Private to kernels.cc and attention.cc.
//
// Each namespace simd_<isa> defines `struct Vec` with the same static interface:
//   T (register type), Mask, kWidth, Zero, Set1, Load/Store (kWidth lanes), LoadN/StoreN (first
//   n <= kWidth lanes, the rest read as 0 / left untouched), LoadBf16/LoadBf16N, LoadF16 (IEEE
//   half, kWidth lanes), Add, Sub, Mul,
//   Div, Max, Min, MulAdd(a, b, c) = a * b + c, ReduceAdd, ReduceAdd4 (four at once), ReduceMax,
//   Round (to nearest even), Pow2 (2^n for integral n in [-126, 127]), GreaterEqual, Select,
//   SumSquaresDouble;
// plus the shared functions of simd_common.inc (Exp).
//
// The SIMD namespaces sit inside `#pragma GCC target` regions rather than per-function
// attributes: everything defined there (including the algorithms included into these
// namespaces by the .cc files) is compiled for that ISA and can inline the intrinsics. Callers
// dispatch at run time (simd_internal.h) and never call these unless the CPU supports them.
#ifndef KVSERVE_ENGINE_SIMD_VEC_INL_H_
#define KVSERVE_ENGINE_SIMD_VEC_INL_H_

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/dtype.h"

namespace kvserve::engine {

// Scalar helpers shared by every ISA.
inline float Bf16BitsToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// f32 -> bf16 with round-to-nearest-even; NaN stays a (quiet) NaN.
inline uint16_t FloatToBf16Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

namespace simd_scalar {

struct Vec {
  using T = float;
  using Mask = bool;
  static constexpr int kWidth = 1;
  static T Zero() { return 0.f; }
  static T Set1(float v) { return v; }
  static T Load(const float* p) { return *p; }
  static void Store(float* p, T v) { *p = v; }
  static T LoadN(const float* p, int n) { return n > 0 ? *p : 0.f; }
  static void StoreN(float* p, T v, int n) {
    if (n > 0) *p = v;
  }
  static T LoadBf16(const uint16_t* p) { return Bf16BitsToFloat(*p); }
  static T LoadBf16N(const uint16_t* p, int n) { return n > 0 ? Bf16BitsToFloat(*p) : 0.f; }
  static T LoadF16(const uint16_t* p) { return HalfToFloat(*p); }
  static T Add(T a, T b) { return a + b; }
  static T Sub(T a, T b) { return a - b; }
  static T Mul(T a, T b) { return a * b; }
  static T Div(T a, T b) { return a / b; }
  static T Max(T a, T b) { return a > b ? a : b; }
  static T Min(T a, T b) { return a < b ? a : b; }
  static T MulAdd(T a, T b, T c) { return a * b + c; }
  static float ReduceAdd(T v) { return v; }
  static void ReduceAdd4(T a0, T a1, T a2, T a3, float* out) {
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
  }
  static float ReduceMax(T v) { return v; }
  static T Round(T v) { return std::nearbyint(v); }
  static T Pow2(T n) {
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  static Mask GreaterEqual(T a, T b) { return a >= b; }
  static T Select(Mask m, T if_true, T if_false) { return m ? if_true : if_false; }
  static double SumSquaresDouble(const float* x, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
    return sum;
  }
};

#include "engine/simd_common.inc"

}  // namespace simd_scalar

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace simd_avx2 {

struct Vec {
  using T = __m256;
  using Mask = __m256;
  static constexpr int kWidth = 8;
  static __m256i PrefixMask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static T Zero() { return _mm256_setzero_ps(); }
  static T Set1(float v) { return _mm256_set1_ps(v); }
  static T Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T LoadN(const float* p, int n) { return _mm256_maskload_ps(p, PrefixMask(n)); }
  static void StoreN(float* p, T v, int n) { _mm256_maskstore_ps(p, PrefixMask(n), v); }
  static T LoadBf16(const uint16_t* p) {
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static T LoadBf16N(const uint16_t* p, int n) {
    uint16_t tmp[kWidth] = {};
    std::memcpy(tmp, p, sizeof(uint16_t) * (n > 0 ? n : 0));
    return LoadBf16(tmp);
  }
  static T LoadF16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static T Add(T a, T b) { return _mm256_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T Mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T Div(T a, T b) { return _mm256_div_ps(a, b); }
  static T Max(T a, T b) { return _mm256_max_ps(a, b); }
  static T Min(T a, T b) { return _mm256_min_ps(a, b); }
  static T MulAdd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static float ReduceAdd(T v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // out[i] = the sum of a_i's lanes, the four reductions sharing one horizontal-add tree.
  static void ReduceAdd4(T a0, T a1, T a2, T a3, float* out) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
  }
  static float ReduceMax(T v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static T Round(T v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T Pow2(T n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static Mask GreaterEqual(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static T Select(Mask m, T if_true, T if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  static double SumSquaresDouble(const float* x, int64_t n) {
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
      const __m256d hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
      acc0 = _mm256_fmadd_pd(lo, lo, acc0);
      acc1 = _mm256_fmadd_pd(hi, hi, acc1);
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(acc0, acc1));
    double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
    return sum;
  }
};

#include "engine/simd_common.inc"

}  // namespace simd_avx2
#pragma GCC pop_options

// Every CPU with AVX-512 BW and VL (which dispatch requires) also has DQ.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
// GCC 12 false positive on the _mm512_undefined_* idiom inside its own intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace simd_avx512 {

struct Vec {
  using T = __m512;
  using Mask = __mmask16;
  static constexpr int kWidth = 16;
  static __mmask16 PrefixMask(int n) {
    return n <= 0 ? 0 : static_cast<__mmask16>((n >= 16 ? 0xffffu : ((1u << n) - 1u)));
  }
  static T Zero() { return _mm512_setzero_ps(); }
  static T Set1(float v) { return _mm512_set1_ps(v); }
  static T Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T LoadN(const float* p, int n) { return _mm512_maskz_loadu_ps(PrefixMask(n), p); }
  static void StoreN(float* p, T v, int n) { _mm512_mask_storeu_ps(p, PrefixMask(n), v); }
  static T LoadBf16(const uint16_t* p) {
    const __m512i wide =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static T LoadBf16N(const uint16_t* p, int n) {
    const __m256i narrow = _mm256_maskz_loadu_epi16(PrefixMask(n), p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(narrow), 16));
  }
  static T LoadF16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static T Add(T a, T b) { return _mm512_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T Mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T Div(T a, T b) { return _mm512_div_ps(a, b); }
  static T Max(T a, T b) { return _mm512_max_ps(a, b); }
  static T Min(T a, T b) { return _mm512_min_ps(a, b); }
  static T MulAdd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static float ReduceAdd(T v) {
    const __m256 half =
        _mm256_add_ps(_mm512_castps512_ps256(v),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // out[i] = the sum of a_i's lanes: each folded to 8 lanes, then one horizontal-add tree.
  static void ReduceAdd4(T a0, T a1, T a2, T a3, float* out) {
    auto fold = [](T v) {
      return _mm256_add_ps(_mm512_castps512_ps256(v),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    };
    const __m256 h =
        _mm256_hadd_ps(_mm256_hadd_ps(fold(a0), fold(a1)), _mm256_hadd_ps(fold(a2), fold(a3)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
  }
  static float ReduceMax(T v) {
    const __m256 half =
        _mm256_max_ps(_mm512_castps512_ps256(v),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static T Round(T v) {
    return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static T Pow2(T n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static Mask GreaterEqual(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static T Select(Mask m, T if_true, T if_false) {
    return _mm512_mask_blend_ps(m, if_false, if_true);
  }
  static double SumSquaresDouble(const float* x, int64_t n) {
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
      const __m512d hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
      acc0 = _mm512_fmadd_pd(lo, lo, acc0);
      acc1 = _mm512_fmadd_pd(hi, hi, acc1);
    }
    double lanes[8];
    _mm512_storeu_pd(lanes, _mm512_add_pd(acc0, acc1));
    double sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                 ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
    return sum;
  }
};

#include "engine/simd_common.inc"

}  // namespace simd_avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_SIMD_VEC_INL_H_
