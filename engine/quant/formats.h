// What kvserve knows of each quantized weight type: one FormatInfo per ggml type, and the one
// function that reads a ggml block into integers (DecodeBlock). Everything else — the reference
// dequantization, the repacked tiles of the SIMD kernels, the scalar reference dot products —
// is written once over the decoded form:
//
//   x[i] = (d * scale[g]) * v(u[i]) - (d2 * min[g])     formats with mins (Q2_K, Q4_K, Q5_K)
//   x[i] = (d * scale[g]) * v(u[i]) + d2                formats with a float min (Q4_1, Q5_1)
//   x[i] = (d * scale[g]) * v(u[i])                     the others
//
// where g = i / group_k, u[i] is the stored unsigned quant (`bits` wide) and v(u) its signed
// value: u - offset, or kIq4NlValues[u] for the IQ4 types (lut). d and d2 are the block's f16
// scales; scale[g] is 1 for formats without per-group scales.
//
// Thread-safety: immutable tables and pure functions.
#ifndef KVSERVE_ENGINE_QUANT_FORMATS_H_
#define KVSERVE_ENGINE_QUANT_FORMATS_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/dtype.h"
#include "engine/quant/ggml_blocks.h"

namespace kvserve::engine::quant {

// How activations are quantized for a weight type (as ggml's vec_dot_type): Q8_0 and Q8_1 per
// 32 values with an f16 scale (Q8_1 also keeps s = d * sum), Q8_K per 256 with an f32 scale.
enum class ActKind { kQ8_0, kQ8_1, kQ8_K };
std::string_view ActKindName(ActKind kind);
inline int ActBlockK(ActKind kind) { return kind == ActKind::kQ8_K ? 256 : 32; }

struct FormatInfo {
  GgmlType type;
  int block_k;      // values per block (32 or 256)
  int block_bytes;  // bytes per block in the file
  int group_k;      // values per integer scale (16 or 32; = block_k when unscaled)
  int bits;         // width of u: 2, 3, 4, 5, 6 or 8
  bool lut;         // v(u) = kIq4NlValues[u]; kernels look u up as kIq4NlValues[u] + offset
  int offset;       // v(u) = u - offset (when !lut)
  bool scaled;      // per-group integer scales
  bool mins;        // per-group integer mins with the f16 dmin in d2
  bool add_min;     // a float min per block in d2 (Q4_1, Q5_1)
  ActKind act;
  constexpr int groups() const { return block_k / group_k; }
};

// The 12 weight types kvserve multiplies, in ggml's id order.
inline constexpr FormatInfo kFormats[] = {
    // type           bk   bytes gk  bits lut    off  scaled mins   add_min act
    {GgmlType::kQ4_0, 32, 18, 32, 4, false, 8, false, false, false, ActKind::kQ8_0},
    {GgmlType::kQ4_1, 32, 20, 32, 4, false, 0, false, false, true, ActKind::kQ8_1},
    {GgmlType::kQ5_0, 32, 22, 32, 5, false, 16, false, false, false, ActKind::kQ8_0},
    {GgmlType::kQ5_1, 32, 24, 32, 5, false, 0, false, false, true, ActKind::kQ8_1},
    {GgmlType::kQ8_0, 32, 34, 32, 8, false, 128, false, false, false, ActKind::kQ8_0},
    {GgmlType::kQ2_K, 256, 84, 16, 2, false, 0, true, true, false, ActKind::kQ8_K},
    {GgmlType::kQ3_K, 256, 110, 16, 3, false, 4, true, false, false, ActKind::kQ8_K},
    {GgmlType::kQ4_K, 256, 144, 32, 4, false, 0, true, true, false, ActKind::kQ8_K},
    {GgmlType::kQ5_K, 256, 176, 32, 5, false, 0, true, true, false, ActKind::kQ8_K},
    {GgmlType::kQ6_K, 256, 210, 16, 6, false, 32, true, false, false, ActKind::kQ8_K},
    {GgmlType::kIQ4_NL, 32, 18, 32, 4, true, 128, false, false, false, ActKind::kQ8_0},
    {GgmlType::kIQ4_XS, 256, 136, 32, 4, true, 128, true, false, false, ActKind::kQ8_K},
};

// The format of a quantized ggml type, or nullptr for types kvserve does not multiply
// (F32/F16/BF16 are not "quantized"; Q8_1/Q8_K are activation-only; the IQ1/IQ2/IQ3 grids).
constexpr const FormatInfo* FindFormat(GgmlType type) {
  for (const FormatInfo& f : kFormats) {
    if (f.type == type) return &f;
  }
  return nullptr;
}

// One block in decoded form (see the top of this file).
struct DecodedBlock {
  uint8_t u[256];
  int8_t scale[16];
  int8_t min[16];
  uint16_t d;   // f16 bits
  uint16_t d2;  // f16 bits: dmin (mins) or m (add_min); 0 otherwise
};

// Reads one block of `format` from `block` (block_bytes bytes).
void DecodeBlock(const FormatInfo& format, const uint8_t* block, DecodedBlock* out);

// The signed integer a stored quant stands for.
inline int QuantValue(const FormatInfo& format, int u) {
  return format.lut ? kIq4NlValues[u & 15] : u - format.offset;
}

// Dequantizes `n` values (a multiple of block_k) as ggml's dequantize_row_* does.
void DequantizeRow(const FormatInfo& format, const uint8_t* src, float* dst, int64_t n);

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_FORMATS_H_
