// Linear over oneDNN 2.x matmul. oneDNN's preferred weight layout may depend on the row count
// m, but a Linear keeps one packed copy: the layout is chosen at kLayoutProbeRows, and every
// other m gets a primitive built for that fixed layout. Only if oneDNN then offers nothing but
// its reference kernel for some m does the Linear add a plain-layout copy for such m.
//
// int8 (see primitives.h for the scheme): oneDNN 2.6 on AVX2 offers only gemm:jit for int8
// matmul, at every m. Measured on a Zen 3 host: s8 activations are ~3x slower than u8 (oneDNN
// shifts them to u8 itself), and u8 src with s8 weights in [-127, 127] saturates (s16 pair sums).
// Output scales in oneDNN 2.6 are per-N only, but per-row activation scales matter (rows of a
// batch come from different sequences of different magnitude), so the matmul is a plain
// u8 x s8 -> s32 product with no attributes, and the zero point, both scales and the bias are
// applied by our own epilogue, in place on y. That is one pass over m x out values, small next to
// the matmul, and it makes per-row scales free.
#include "engine/primitives.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/cpu_features.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace kvserve::engine {
namespace {

using DnnlDType = dnnl::memory::data_type;
using DnnlTag = dnnl::memory::format_tag;

// The packed weight layout is the one oneDNN prefers at this row count. One full brgemm M block
// (oneDNN 2.x blocks M by up to 64), between decode batches and prefill chunks. Other row counts
// reuse this layout (see OneDnnLinear::Impl::EntryFor).
constexpr int64_t kLayoutProbeRows = 64;

// One CPU engine and one stream for the whole process. Leaked on purpose: Linears may live in
// other statics and must not outlive the engine at exit.
struct OneDnnContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

OneDnnContext& Context() {
  static OneDnnContext* const context = new OneDnnContext;
  return *context;
}

// f32 -> bf16 with round-to-nearest-even; NaNs stay (quiet) NaNs.
inline uint16_t F32ToBf16Rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Bulk version of F32ToBf16Rne. Written with GCC vector types so the same source compiles to
// AVX-512 on hosts that have it (the only hosts where oneDNN 2.6 runs bf16 matmul) and to SSE2
// elsewhere; both clones compute exactly what the scalar function does (checked for all 2^32
// inputs while writing this).
typedef uint32_t U32x16 __attribute__((vector_size(64)));
typedef uint16_t U16x16 __attribute__((vector_size(32)));

__attribute__((target_clones("avx512f", "default"))) void F32ToBf16RneBulk(const float* src,
                                                                           uint16_t* dst,
                                                                           int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    U32x16 u;
    std::memcpy(&u, src + i, sizeof(u));
    const U32x16 is_nan = (U32x16)((u & 0x7fffffffu) > 0x7f800000u);  // all-ones lanes
    const U32x16 rounded = u + 0x7fffu + ((u >> 16) & 1u);
    const U32x16 bits = (rounded & ~is_nan) | ((u | 0x400000u) & is_nan);
    const U16x16 out = __builtin_convertvector(bits >> 16, U16x16);
    std::memcpy(dst + i, &out, sizeof(out));
  }
  for (; i < n; ++i) dst[i] = F32ToBf16Rne(src[i]);
}

// oneDNN data types of a Linear's matmul operands.
struct OperandTypes {
  DnnlDType src;
  DnnlDType weights;
  DnnlDType dst;
};

OperandTypes ToDnnl(WeightDType dtype) {
  switch (dtype) {
    case WeightDType::kF32:
    case WeightDType::kF16:
    case WeightDType::kAuto:
    case WeightDType::kQ8_0:
    case WeightDType::kQ4_K:
      break;
    case WeightDType::kBF16:
      return {DnnlDType::bf16, DnnlDType::bf16, DnnlDType::f32};
    case WeightDType::kInt8:
      return {DnnlDType::u8, DnnlDType::s8, DnnlDType::s32};
  }
  return {DnnlDType::f32, DnnlDType::f32, DnnlDType::f32};
}

// int8 quantization ranges (see primitives.h for why weights get 7 bits).
constexpr int kWeightQuantMax = 63;
constexpr int kActivationQuantMax = 127;
constexpr int kActivationZeroPoint = 128;

// Rounds v * inv_scale to the nearest integer (ties to even) clamped to
// [-kActivationQuantMax, kActivationQuantMax], plus the zero point. The comparisons are written
// so that a NaN product clamps the way the AVX2 max/min instructions do (to the bound).
inline uint8_t QuantizeActivation(float v, float inv_scale) {
  float t = v * inv_scale;
  t = t > -kActivationQuantMax ? t : -kActivationQuantMax;
  t = t < kActivationQuantMax ? t : kActivationQuantMax;
  return static_cast<uint8_t>(static_cast<int>(std::nearbyint(t)) + kActivationZeroPoint);
}

// Per-row symmetric activation quantization: row_scales[i] = max|x_i| / 127 and
// q[i, k] = round(x[i, k] / row_scales[i]) + 128, as u8. Both versions compute the same bits
// (same multiply by 127 / max, same round-to-nearest-even, same clamps).
void QuantizeRowsScalar(const float* x, int64_t m, int64_t k, uint8_t* q, float* row_scales) {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    float max_abs = 0.0f;
    for (int64_t j = 0; j < k; ++j) max_abs = std::max(max_abs, std::fabs(row[j]));
    row_scales[i] = max_abs / kActivationQuantMax;
    const float inv_scale = max_abs > 0.0f ? kActivationQuantMax / max_abs : 0.0f;
    for (int64_t j = 0; j < k; ++j) q[i * k + j] = QuantizeActivation(row[j], inv_scale);
  }
}

// Eight activations as s32 q + 128 (see QuantizeActivation).
__attribute__((target("avx2,fma"))) inline __m256i Quantize8Avx2(const float* x, __m256 inv_scale) {
  __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x), inv_scale);
  t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-kActivationQuantMax)),
                    _mm256_set1_ps(kActivationQuantMax));
  // Rounds to nearest-even (the default MXCSR mode), like std::nearbyint.
  return _mm256_add_epi32(_mm256_cvtps_epi32(t), _mm256_set1_epi32(kActivationZeroPoint));
}

__attribute__((target("avx2,fma"))) void QuantizeRowsAvx2(const float* x, int64_t m, int64_t k,
                                                          uint8_t* q, float* row_scales) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // packs/packus interleave 128-bit lanes; this restores element order.
  const __m256i unshuffle = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    uint8_t* q_row = q + i * k;
    __m256 max8 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= k; j += 8)
      max8 = _mm256_max_ps(max8, _mm256_and_ps(_mm256_loadu_ps(row + j), abs_mask));
    __m128 max4 = _mm_max_ps(_mm256_castps256_ps128(max8), _mm256_extractf128_ps(max8, 1));
    max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
    max4 = _mm_max_ss(max4, _mm_shuffle_ps(max4, max4, 1));
    float max_abs = _mm_cvtss_f32(max4);
    for (; j < k; ++j) max_abs = std::max(max_abs, std::fabs(row[j]));
    row_scales[i] = max_abs / kActivationQuantMax;
    const float inv_scale = max_abs > 0.0f ? kActivationQuantMax / max_abs : 0.0f;
    const __m256 inv8 = _mm256_set1_ps(inv_scale);
    j = 0;
    for (; j + 32 <= k; j += 32) {
      const __m256i s16_a =
          _mm256_packs_epi32(Quantize8Avx2(row + j, inv8), Quantize8Avx2(row + j + 8, inv8));
      const __m256i s16_b =
          _mm256_packs_epi32(Quantize8Avx2(row + j + 16, inv8), Quantize8Avx2(row + j + 24, inv8));
      const __m256i u8 = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(s16_a, s16_b), unshuffle);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q_row + j), u8);
    }
    for (; j < k; ++j) q_row[j] = QuantizeActivation(row[j], inv_scale);
  }
}

// In place on y: the s32 matmul result acc[i, n] (stored in y's memory) becomes
// (acc[i, n] - compensation[n]) * row_scales[i] * weight_scales[n] + bias[n] in f32, where
// compensation[n] = 128 * sum_k qw[n, k] removes the activation zero point. bias may be null.
void Int8EpilogueScalar(float* y, int64_t m, int64_t n, const float* row_scales,
                        const float* weight_scales, const int32_t* compensation,
                        const float* bias) {
  for (int64_t i = 0; i < m; ++i) {
    float* y_row = y + i * n;
    for (int64_t j = 0; j < n; ++j) {
      int32_t acc;
      std::memcpy(&acc, y_row + j, sizeof(acc));
      const float value =
          static_cast<float>(acc - compensation[j]) * (row_scales[i] * weight_scales[j]);
      y_row[j] = bias != nullptr ? value + bias[j] : value;
    }
  }
}

__attribute__((target("avx2,fma"))) void Int8EpilogueAvx2(float* y, int64_t m, int64_t n,
                                                          const float* row_scales,
                                                          const float* weight_scales,
                                                          const int32_t* compensation,
                                                          const float* bias) {
  for (int64_t i = 0; i < m; ++i) {
    float* y_row = y + i * n;
    const __m256 row_scale = _mm256_set1_ps(row_scales[i]);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256i acc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y_row + j));
      const __m256i comp = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(compensation + j));
      const __m256 value = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, comp));
      const __m256 scale = _mm256_mul_ps(row_scale, _mm256_loadu_ps(weight_scales + j));
      _mm256_storeu_ps(y_row + j, bias != nullptr
                                      ? _mm256_fmadd_ps(value, scale, _mm256_loadu_ps(bias + j))
                                      : _mm256_mul_ps(value, scale));
    }
    for (; j < n; ++j) {
      int32_t acc;
      std::memcpy(&acc, y_row + j, sizeof(acc));
      const float value = static_cast<float>(acc - compensation[j]);
      const float scale = row_scales[i] * weight_scales[j];
      y_row[j] = bias != nullptr ? std::fma(value, scale, bias[j]) : value * scale;
    }
  }
}

bool UseAvx2() {
  static const bool use = CpuFeatures().avx2 && CpuFeatures().fma;
  return use;
}

// Implementations oneDNN falls back to when nothing optimized fits ("ref:any").
bool IsReferenceImpl(std::string_view impl) { return impl.find("ref") != std::string_view::npos; }

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "kvserve primitives: %s\n", message.c_str());
  std::abort();
}

}  // namespace

std::string_view WeightDTypeName(WeightDType dtype) {
  switch (dtype) {
    case WeightDType::kAuto:
      return "auto";
    case WeightDType::kF32:
      return "f32";
    case WeightDType::kF16:
      return "f16";
    case WeightDType::kBF16:
      return "bf16";
    case WeightDType::kInt8:
      return "int8";
    case WeightDType::kQ8_0:
      return "q8_0";
    case WeightDType::kQ4_K:
      return "q4_k";
  }
  return "unknown";
}

WeightDType DefaultFloatWeightDType() { return WeightDType::kF32; }

absl::StatusOr<WeightDType> ParseWeightDType(std::string_view name) {
  for (WeightDType d :
       {WeightDType::kAuto, WeightDType::kF32, WeightDType::kF16, WeightDType::kBF16,
        WeightDType::kInt8, WeightDType::kQ8_0, WeightDType::kQ4_K}) {
    if (WeightDTypeName(d) == name) return d;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("weight dtype must be auto, f32, f16, bf16, int8, q8_0 or q4_k, not '",
                   std::string(name), "'"));
}

struct OneDnnLinear::Impl {
  // A matmul for one row count, with memory objects whose data handles are set per call.
  struct Entry {
    dnnl::matmul matmul;
    dnnl::memory src;
    dnnl::memory dst;
    std::unordered_map<int, dnnl::memory> args;  // Built once; src/dst handles change.
    std::string impl_name;  // oneDNN's name, marked when the plain weights copy is used.
    uint64_t last_use = 0;  // use_clock at the latest Forward with this row count
  };

  // Row counts whose primitives are kept. Without a bound, every new step size added a
  // primitive for good (issue 13: 676 prompt lengths took the demo model from 56 MB to 443 MB
  // RSS on one CPU); past it the least recently used row count is dropped and rebuilt if it
  // comes back (the same primitive, so the same results). 64 covers a decode batch's sizes
  // plus the recent prefill chunk sizes.
  static constexpr size_t kMaxCachedRowCounts = 64;
  uint64_t use_clock = 0;

  int64_t in_features = 0;
  int64_t out_features = 0;
  WeightDType dtype = WeightDType::kF32;
  OperandTypes types = ToDnnl(WeightDType::kF32);

  // The one packed copy of the weights, [in, out] in oneDNN's terms, in the layout preferred at
  // kLayoutProbeRows.
  dnnl::memory packed_weights;
  // A plain row-major [in, out] copy, made lazily only if some row count cannot use the packed
  // layout with an optimized kernel (doubles this Linear's weight memory then).
  dnnl::memory plain_weights;
  dnnl::memory bias;  // Empty handle when there is no bias or for int8 (see int8_bias).

  std::vector<uint16_t> x_bf16;  // bf16 copy of x for bf16 weights; grows to the largest m.

  // int8 only: per output channel scale and zero-point compensation (128 * sum_k qw[n, k]), the
  // f32 bias (empty if none) added by the epilogue, and per-call scratch (grows to largest m).
  std::vector<float> int8_weight_scales;
  std::vector<int32_t> int8_compensation;
  std::vector<float> int8_bias;
  std::vector<uint8_t> x_u8;
  std::vector<float> x_row_scales;
  absl::flat_hash_map<int64_t, Entry> entries;  // Keyed by row count m.
  std::string impl_name;                        // Of the most recent Forward.

  dnnl::memory::desc SrcDesc(int64_t m) const {
    return dnnl::memory::desc({m, in_features}, types.src, DnnlTag::ab);
  }
  dnnl::memory::desc DstDesc(int64_t m) const {
    return dnnl::memory::desc({m, out_features}, types.dst, DnnlTag::ab);
  }
  dnnl::memory::desc BiasDesc() const {
    return dnnl::memory::desc({1, out_features}, DnnlDType::f32, DnnlTag::ab);
  }
  dnnl::memory::desc PlainWeightsDesc() const {
    return dnnl::memory::desc({in_features, out_features}, types.weights, DnnlTag::ab);
  }

  // A matmul primitive descriptor for m rows with the given weights layout (or format_tag::any),
  // or nullopt when oneDNN has no implementation for it.
  std::optional<dnnl::matmul::primitive_desc> MakePd(int64_t m,
                                                     const dnnl::memory::desc& weights) const {
    try {
      const dnnl::matmul::desc desc =
          bias ? dnnl::matmul::desc(SrcDesc(m), weights, BiasDesc(), DstDesc(m))
               : dnnl::matmul::desc(SrcDesc(m), weights, DstDesc(m));
      return dnnl::matmul::primitive_desc(desc, dnnl::primitive_attr(), Context().engine);
    } catch (const dnnl::error&) {
      return std::nullopt;
    }
  }

  Entry MakeEntry(int64_t m, const dnnl::matmul::primitive_desc& pd, bool uses_plain) const {
    Entry entry;
    entry.matmul = dnnl::matmul(pd);
    entry.src = dnnl::memory(SrcDesc(m), Context().engine, DNNL_MEMORY_NONE);
    entry.dst = dnnl::memory(DstDesc(m), Context().engine, DNNL_MEMORY_NONE);
    entry.args = {{DNNL_ARG_SRC, entry.src},
                  {DNNL_ARG_WEIGHTS, uses_plain ? plain_weights : packed_weights},
                  {DNNL_ARG_DST, entry.dst}};
    if (bias) entry.args.emplace(DNNL_ARG_BIAS, bias);
    entry.impl_name = pd.impl_info_str();
    if (uses_plain) entry.impl_name += " [plain weights]";
    return entry;
  }

  void EnsurePlainWeights() {
    if (plain_weights) return;
    OneDnnContext& context = Context();
    plain_weights = dnnl::memory(PlainWeightsDesc(), context.engine);
    dnnl::reorder(packed_weights, plain_weights)
        .execute(context.stream, packed_weights, plain_weights);
    context.stream.wait();
  }

  // The cached matmul for m rows, created on first use. Preference: the packed weights with an
  // optimized kernel; else the plain copy; else whatever works (correct, maybe slow).
  Entry& EntryFor(int64_t m) {
    auto it = entries.find(m);
    if (it != entries.end()) {
      it->second.last_use = ++use_clock;
      return it->second;
    }
    if (entries.size() >= kMaxCachedRowCounts) EvictLeastRecentlyUsed();
    Entry& entry = CreateEntry(m);
    entry.last_use = ++use_clock;
    return entry;
  }

  void EvictLeastRecentlyUsed() {
    auto oldest = entries.begin();
    for (auto it = entries.begin(); it != entries.end(); ++it) {
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    }
    entries.erase(oldest);
  }

  Entry& CreateEntry(int64_t m) {
    std::optional<dnnl::matmul::primitive_desc> packed_pd = MakePd(m, packed_weights.get_desc());
    if (packed_pd && !IsReferenceImpl(packed_pd->impl_info_str())) {
      return entries.emplace(m, MakeEntry(m, *packed_pd, false)).first->second;
    }
    std::optional<dnnl::matmul::primitive_desc> plain_pd = MakePd(m, PlainWeightsDesc());
    if (plain_pd && (!packed_pd || !IsReferenceImpl(plain_pd->impl_info_str()))) {
      EnsurePlainWeights();
      return entries.emplace(m, MakeEntry(m, *plain_pd, true)).first->second;
    }
    if (packed_pd) return entries.emplace(m, MakeEntry(m, *packed_pd, false)).first->second;
    // Create() built a primitive at kLayoutProbeRows, and oneDNN's reference matmul takes any
    // row count with plain weights, so this is a broken invariant, not an input error.
    Die(absl::StrCat("no oneDNN matmul for m=", m, " in=", in_features, " out=", out_features,
                     " dtype=", std::string(WeightDTypeName(dtype))));
  }
};

absl::StatusOr<std::unique_ptr<OneDnnLinear>> OneDnnLinear::Create(const float* weight,
                                                                   int64_t out_features,
                                                                   int64_t in_features,
                                                                   WeightDType dtype,
                                                                   const float* bias) {
  if (weight == nullptr) return absl::InvalidArgumentError("OneDnnLinear::Create: weight is null");
  if (dtype != WeightDType::kF32 && dtype != WeightDType::kBF16 && dtype != WeightDType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "oneDNN multiplies f32, bf16 or int8 weights, not ", std::string(WeightDTypeName(dtype))));
  }
  if (out_features < 1 || in_features < 1) {
    return absl::InvalidArgumentError(absl::StrCat("OneDnnLinear::Create: bad weight shape [",
                                                   out_features, ", ", in_features, "]"));
  }
  auto impl = std::make_unique<Impl>();
  impl->in_features = in_features;
  impl->out_features = out_features;
  impl->dtype = dtype;
  impl->types = ToDnnl(dtype);
  OneDnnContext& context = Context();

  try {
    if (bias != nullptr && dtype == WeightDType::kInt8) {
      impl->int8_bias.assign(bias, bias + out_features);
    } else if (bias != nullptr) {
      impl->bias = dnnl::memory(impl->BiasDesc(), context.engine);
      std::memcpy(impl->bias.get_data_handle(), bias, out_features * sizeof(float));
    }

    std::optional<dnnl::matmul::primitive_desc> pd = impl->MakePd(
        kLayoutProbeRows,
        dnnl::memory::desc({in_features, out_features}, impl->types.weights, DnnlTag::any));
    if (!pd) {
      if (dtype == WeightDType::kBF16) {
        return absl::FailedPreconditionError(
            "oneDNN has no bf16 matmul on this CPU (oneDNN 2.x needs AVX-512 for bf16); use f32 "
            "weights");
      }
      return absl::InternalError(absl::StrCat("oneDNN could not create an ",
                                              std::string(WeightDTypeName(dtype)), " matmul for [",
                                              out_features, ", ", in_features, "] weights"));
    }

    // The caller's [out, in] row-major matrix is oneDNN's [in, out] weights in format "ba". For
    // bf16, round it ourselves (nearest-even) so the numbers do not depend on oneDNN's reorder.
    std::vector<uint16_t> weight_bf16;
    std::vector<int8_t> weight_s8;
    dnnl::memory source;
    const dnnl::memory::dims dims = {in_features, out_features};
    if (dtype == WeightDType::kInt8) {
      // Rounded in double from the exact ratio so that |w - q * scale| <= scale / 2 (up to the
      // f32 rounding of the scale), which is what the tests' error bound assumes.
      weight_s8.resize(out_features * in_features);
      impl->int8_weight_scales.resize(out_features);
      impl->int8_compensation.resize(out_features);
      for (int64_t o = 0; o < out_features; ++o) {
        const float* row = weight + o * in_features;
        double max_abs = 0.0;
        for (int64_t k = 0; k < in_features; ++k) {
          max_abs = std::max(max_abs, std::fabs(static_cast<double>(row[k])));
        }
        if (!std::isfinite(max_abs)) {
          return absl::InvalidArgumentError(
              absl::StrCat("OneDnnLinear::Create: weight row ", o,
                           " has a non-finite value; cannot quantize to int8"));
        }
        impl->int8_weight_scales[o] = static_cast<float>(max_abs / kWeightQuantMax);
        int32_t sum = 0;
        for (int64_t k = 0; k < in_features; ++k) {
          const double q = max_abs > 0.0 ? std::nearbyint(row[k] * kWeightQuantMax / max_abs) : 0.0;
          weight_s8[o * in_features + k] = static_cast<int8_t>(q);
          sum += static_cast<int32_t>(q);
        }
        impl->int8_compensation[o] = kActivationZeroPoint * sum;
      }
      source = dnnl::memory({dims, DnnlDType::s8, DnnlTag::ba}, context.engine, weight_s8.data());
    } else if (dtype == WeightDType::kBF16) {
      weight_bf16.resize(out_features * in_features);
      F32ToBf16RneBulk(weight, weight_bf16.data(), out_features * in_features);
      source =
          dnnl::memory({dims, DnnlDType::bf16, DnnlTag::ba}, context.engine, weight_bf16.data());
    } else {
      // oneDNN only reads a reorder's source.
      source = dnnl::memory({dims, DnnlDType::f32, DnnlTag::ba}, context.engine,
                            const_cast<float*>(weight));
    }
    impl->packed_weights = dnnl::memory(pd->weights_desc(), context.engine);
    dnnl::reorder(source, impl->packed_weights)
        .execute(context.stream, source, impl->packed_weights);
    context.stream.wait();

    impl->entries.emplace(kLayoutProbeRows, impl->MakeEntry(kLayoutProbeRows, *pd, false));
    impl->impl_name = pd->impl_info_str();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN error while packing [", out_features, ", ",
                                            in_features, "] ", std::string(WeightDTypeName(dtype)),
                                            " weights: ", e.what()));
  }
  return std::unique_ptr<OneDnnLinear>(new OneDnnLinear(std::move(impl)));
}

OneDnnLinear::OneDnnLinear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OneDnnLinear::~OneDnnLinear() = default;

void OneDnnLinear::Forward(const float* x, int64_t m, float* y) {
  if (m < 1) Die(absl::StrCat("OneDnnLinear::Forward with m=", m));
  Impl& impl = *impl_;
  try {
    Impl::Entry& entry = impl.EntryFor(m);
    if (impl.dtype == WeightDType::kBF16) {
      const size_t n = static_cast<size_t>(m * impl.in_features);
      if (impl.x_bf16.size() < n) impl.x_bf16.resize(n);
      F32ToBf16RneBulk(x, impl.x_bf16.data(), static_cast<int64_t>(n));
      entry.src.set_data_handle(impl.x_bf16.data());
    } else if (impl.dtype == WeightDType::kInt8) {
      const size_t n = static_cast<size_t>(m * impl.in_features);
      if (impl.x_u8.size() < n) impl.x_u8.resize(n);
      if (impl.x_row_scales.size() < static_cast<size_t>(m)) impl.x_row_scales.resize(m);
      (UseAvx2() ? QuantizeRowsAvx2 : QuantizeRowsScalar)(x, m, impl.in_features, impl.x_u8.data(),
                                                          impl.x_row_scales.data());
      entry.src.set_data_handle(impl.x_u8.data());
    } else {
      entry.src.set_data_handle(const_cast<float*>(x));  // oneDNN only reads the source.
    }
    entry.dst.set_data_handle(y);
    OneDnnContext& context = Context();
    entry.matmul.execute(context.stream, entry.args);
    context.stream.wait();
    if (impl.dtype == WeightDType::kInt8) {
      // y holds s32 sums now; turn them into f32 outputs in place.
      (UseAvx2() ? Int8EpilogueAvx2 : Int8EpilogueScalar)(
          y, m, impl.out_features, impl.x_row_scales.data(), impl.int8_weight_scales.data(),
          impl.int8_compensation.data(), impl.int8_bias.empty() ? nullptr : impl.int8_bias.data());
    }
    impl.impl_name = entry.impl_name;
  } catch (const dnnl::error& e) {
    // Shapes were validated by Create(); what is left is out of memory or a oneDNN bug.
    Die(absl::StrCat("oneDNN error in Forward (m=", m, ", [", impl.out_features, ", ",
                     impl.in_features, "] ", std::string(WeightDTypeName(impl.dtype)),
                     "): ", e.what()));
  }
}

int64_t OneDnnLinear::in_features() const { return impl_->in_features; }
int64_t OneDnnLinear::out_features() const { return impl_->out_features; }
WeightDType OneDnnLinear::dtype() const { return impl_->dtype; }
size_t OneDnnLinear::cached_row_counts() const { return impl_->entries.size(); }

std::string_view OneDnnLinear::impl_name() const { return impl_->impl_name; }
std::string OneDnnLinear::Describe() const {
  return absl::StrCat("oneDNN ", std::string(WeightDTypeName(impl_->dtype)),
                      impl_->impl_name.empty() ? "" : " ", impl_->impl_name);
}

}  // namespace kvserve::engine
