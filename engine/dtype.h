// Element types of tensors in model files (ggml's numbering, as GGUF stores it) and the
// conversions kvserve needs between them and f32.
//
// Thread-safety: all functions are pure and may be called from any thread.
#ifndef KVSERVE_ENGINE_DTYPE_H_
#define KVSERVE_ENGINE_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvserve::engine {

// ggml tensor types. The numeric values are those written in GGUF files.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
};

// Storage layout of one ggml type: elements are grouped in blocks of `block_size`
// elements occupying `block_bytes` bytes.
struct GgmlTypeTraits {
  std::string_view name;  // "F32", "Q8_0", ...
  int64_t block_size;
  int64_t block_bytes;
};

// Traits for a raw type id read from a file; NotFound-style InvalidArgument error naming the
// id when ggml defines no such type.
absl::StatusOr<GgmlTypeTraits> GetGgmlTypeTraits(uint32_t raw_type);

// Name of a type ("Q8_0"), or "unknown(N)".
std::string_view GgmlTypeName(GgmlType type);

// Whether kvserve can read tensors of this type as weights: F32, F16, BF16 and the quantized
// types of quant/formats.h (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS).
bool IsSupportedWeightType(GgmlType type);

// Bytes taken by `num_elements` elements of `type`; error if num_elements is not a multiple of
// the block size.
absl::StatusOr<int64_t> GgmlRowBytes(GgmlType type, int64_t num_elements);

// Scalar conversions (IEEE half, bfloat16 with round-to-nearest-even).
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float Bf16ToFloat(uint16_t b);
uint16_t FloatToBf16(float f);

// Converts `n` elements of `type` starting at `src` into f32 (quantized types as ggml's
// dequantize_row_* does). `n` must be a multiple of the type's block size. Error (naming the
// type) for types kvserve does not support.
absl::Status ConvertToF32(GgmlType type, const void* src, float* dst, int64_t n);

// Bulk f32 <-> bf16 conversions (vectorized where the CPU allows).
void F32ToBf16(const float* src, uint16_t* dst, int64_t n);
void Bf16ToF32(const uint16_t* src, float* dst, int64_t n);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_DTYPE_H_
