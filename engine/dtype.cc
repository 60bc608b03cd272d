#include "engine/dtype.h"

#include <immintrin.h>

#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/cpu_features.h"
#include "engine/quant/formats.h"

namespace kvserve::engine {
namespace {

// Debian's Abseil is built with its own absl::string_view (not an alias of std::string_view),
// so std::string_view arguments are converted explicitly for StrCat and hash lookups.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr int64_t kQK = 256;  // super-block size of the K-quants and most IQ types

struct TypeEntry {
  bool defined;
  GgmlTypeTraits traits;
};

// Indexed by the raw type id. Ids 4 and 5 (Q4_2, Q4_3) were removed from ggml.
constexpr std::array<TypeEntry, 31> kTypeTable = {{
    {true, {"F32", 1, 4}},
    {true, {"F16", 1, 2}},
    {true, {"Q4_0", 32, 2 + 16}},
    {true, {"Q4_1", 32, 2 + 2 + 16}},
    {false, {"", 0, 0}},
    {false, {"", 0, 0}},
    {true, {"Q5_0", 32, 2 + 4 + 16}},
    {true, {"Q5_1", 32, 2 + 2 + 4 + 16}},
    {true, {"Q8_0", 32, 2 + 32}},
    {true, {"Q8_1", 32, 2 + 2 + 32}},
    {true, {"Q2_K", kQK, 2 + 2 + kQK / 16 + kQK / 4}},
    {true, {"Q3_K", kQK, 2 + kQK / 4 + kQK / 8 + 12}},
    {true, {"Q4_K", kQK, 2 + 2 + 12 + kQK / 2}},
    {true, {"Q5_K", kQK, 2 + 2 + 12 + kQK / 8 + kQK / 2}},
    {true, {"Q6_K", kQK, 2 + kQK / 2 + kQK / 4 + kQK / 16}},
    {true, {"Q8_K", kQK, 4 + kQK + 2 * (kQK / 16)}},
    {true, {"IQ2_XXS", kQK, 2 + kQK / 4}},
    {true, {"IQ2_XS", kQK, 2 + kQK / 4 + kQK / 32}},
    {true, {"IQ3_XXS", kQK, 2 + kQK / 4 + kQK / 8}},
    {true, {"IQ1_S", kQK, 2 + kQK / 8 + kQK / 16}},
    {true, {"IQ4_NL", 32, 2 + 16}},
    {true, {"IQ3_S", kQK, 2 + kQK / 4 + kQK / 8 + kQK / 32 + kQK / 64}},
    {true, {"IQ2_S", kQK, 2 + kQK / 4 + kQK / 16}},
    {true, {"IQ4_XS", kQK, 2 + 2 + kQK / 64 + kQK / 2}},
    {true, {"I8", 1, 1}},
    {true, {"I16", 1, 2}},
    {true, {"I32", 1, 4}},
    {true, {"I64", 1, 8}},
    {true, {"F64", 1, 8}},
    {true, {"IQ1_M", kQK, kQK / 8 + kQK / 16 + kQK / 32}},
    {true, {"BF16", 1, 2}},
}};

const TypeEntry* FindType(uint32_t raw_type) {
  if (raw_type >= kTypeTable.size() || !kTypeTable[raw_type].defined) return nullptr;
  return &kTypeTable[raw_type];
}

uint32_t FloatBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

float BitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Rounds the top 16 bits of an f32 bit pattern to nearest, ties to even; NaNs stay NaN (quiet).
inline uint16_t Bf16FromBits(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

void F32ToBf16Scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Bf16FromBits(FloatBits(src[i]));
}

void Bf16ToF32Scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = BitsToFloat(static_cast<uint32_t>(src[i]) << 16);
}

// AVX2 versions of the same integer arithmetic as the scalar code, so results are bit-identical
// (the AVX-512 BF16 conversion instruction flushes subnormals, hence is not used here).
__attribute__((target("avx2"))) inline __m256i F32x8ToBf16x8(const float* p) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
  const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff)),
                                            _mm256_set1_epi32(0x7f800000));
  const __m256i nan_bits = _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000));
  // Result in the low 16 bits of each 32-bit lane.
  return _mm256_srli_epi32(_mm256_blendv_epi8(rounded, nan_bits, is_nan), 16);
}

__attribute__((target("avx2"))) void F32ToBf16Avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i lo = F32x8ToBf16x8(src + i);
    const __m256i hi = F32x8ToBf16x8(src + i + 8);
    // packus works per 128-bit lane: [lo0 hi0 lo1 hi1] -> reorder 64-bit quarters to lo, hi.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), packed);
  }
  F32ToBf16Scalar(src + i, dst + i, n - i);
}

__attribute__((target("avx2"))) void Bf16ToF32Avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i halfs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m256i widened = _mm256_slli_epi32(_mm256_cvtepu16_epi32(halfs), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), widened);
  }
  Bf16ToF32Scalar(src + i, dst + i, n - i);
}

}  // namespace

absl::StatusOr<GgmlTypeTraits> GetGgmlTypeTraits(uint32_t raw_type) {
  const TypeEntry* entry = FindType(raw_type);
  if (entry == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown ggml tensor type ", raw_type));
  }
  return entry->traits;
}

std::string_view GgmlTypeName(GgmlType type) {
  const uint32_t raw = static_cast<uint32_t>(type);
  if (const TypeEntry* entry = FindType(raw)) return entry->traits.name;
  // Unknown ids only arise from programming errors; intern their names so the returned view
  // stays valid for the life of the process.
  static std::mutex mutex;
  static auto* names = new std::map<uint32_t, std::string>();
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, inserted] = names->try_emplace(raw);
  if (inserted) it->second = absl::StrCat("unknown(", raw, ")");
  return it->second;
}

bool IsSupportedWeightType(GgmlType type) {
  return type == GgmlType::kF32 || type == GgmlType::kF16 || type == GgmlType::kBF16 ||
         quant::FindFormat(type) != nullptr;
}

absl::StatusOr<int64_t> GgmlRowBytes(GgmlType type, int64_t num_elements) {
  const TypeEntry* entry = FindType(static_cast<uint32_t>(type));
  if (entry == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown ggml tensor type ", static_cast<uint32_t>(type)));
  }
  const GgmlTypeTraits& traits = entry->traits;
  if (num_elements < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("negative element count ", num_elements, " for type ", Sv(traits.name)));
  }
  if (num_elements % traits.block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(num_elements, " elements is not a multiple of ",
                                                   Sv(traits.name), " block size ",
                                                   traits.block_size));
  }
  const int64_t blocks = num_elements / traits.block_size;
  if (blocks > std::numeric_limits<int64_t>::max() / traits.block_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(num_elements, " elements of type ",
                                                   Sv(traits.name), " overflow a byte count"));
  }
  return blocks * traits.block_bytes;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));  // inf / NaN
  if (exponent != 0) return BitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return BitsToFloat(sign);  // signed zero
  // Subnormal: value = mantissa * 2^-24. Shift the leading one into the implicit position.
  uint32_t f32_exponent = 113;  // exponent of 2^-14 in f32 bias, lowered once per shift
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --f32_exponent;
  }
  return BitsToFloat(sign | (f32_exponent << 23) | ((mantissa & 0x3ffu) << 13));
}

uint16_t FloatToHalf(float f) {
  const uint32_t bits = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // NaN: keep the top payload bits, force quiet so it stays a NaN
    return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity (or is inf)
  if (abs >= 0x38800000u) {                       // normal half range (>= 2^-14)
    uint32_t h = (abs >> 13) - (112u << 10);
    const uint32_t remainder = abs & 0x1fffu;
    if (remainder > 0x1000u || (remainder == 0x1000u && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  if (abs <= 0x33000000u) return sign;  // <= 2^-25 rounds (ties to even) to zero
  // Subnormal half: count units of 2^-24, rounding to nearest even. A carry into 0x400
  // correctly produces the smallest normal.
  const uint32_t exponent = abs >> 23;  // 102..112 here
  const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14..24
  uint32_t h = mantissa >> shift;
  const uint32_t remainder = mantissa & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float Bf16ToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToBf16(float f) { return Bf16FromBits(FloatBits(f)); }

absl::Status ConvertToF32(GgmlType type, const void* src, float* dst, int64_t n) {
  if (!IsSupportedWeightType(type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert tensors of type ", Sv(GgmlTypeName(type)), " to F32"));
  }
  // Validates n against the block size.
  absl::StatusOr<int64_t> bytes = GgmlRowBytes(type, n);
  if (!bytes.ok()) return bytes.status();
  if (n == 0) return absl::OkStatus();
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(*bytes));
      break;
    case GgmlType::kF16: {
      const auto* bytes_in = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        dst[i] = HalfToFloat(static_cast<uint16_t>(bytes_in[2 * i] | (bytes_in[2 * i + 1] << 8)));
      }
      break;
    }
    case GgmlType::kBF16:
      if (reinterpret_cast<uintptr_t>(src) % alignof(uint16_t) == 0) {
        Bf16ToF32(static_cast<const uint16_t*>(src), dst, n);
      } else {
        const auto* bytes_in = static_cast<const uint8_t*>(src);
        for (int64_t i = 0; i < n; ++i) {
          dst[i] = Bf16ToFloat(static_cast<uint16_t>(bytes_in[2 * i] | (bytes_in[2 * i + 1] << 8)));
        }
      }
      break;
    default:  // a quantized type (IsSupportedWeightType)
      quant::DequantizeRow(*quant::FindFormat(type), static_cast<const uint8_t*>(src), dst, n);
      break;
  }
  return absl::OkStatus();
}

void F32ToBf16(const float* src, uint16_t* dst, int64_t n) {
  if (CpuFeatures().avx2) {
    F32ToBf16Avx2(src, dst, n);
  } else {
    F32ToBf16Scalar(src, dst, n);
  }
}

void Bf16ToF32(const uint16_t* src, float* dst, int64_t n) {
  if (CpuFeatures().avx2) {
    Bf16ToF32Avx2(src, dst, n);
  } else {
    Bf16ToF32Scalar(src, dst, n);
  }
}

}  // namespace kvserve::engine
