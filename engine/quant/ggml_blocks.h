// The block layouts of ggml's quantized tensor types as GGUF files store them (learned from
// ggml's ggml-common.h and the dequantize_row_* functions of ggml-quants.c; written here from
// that description). Every type packs a row into blocks of kBlockK values; a block holds small
// integers ("quants") and the scales that turn them back into floats:
//
//   Q4_0  32 values: f16 d; 16 bytes of nibbles.       x = d * (q - 8),       q in [0, 15]
//   Q4_1  32 values: f16 d, m; 16 bytes of nibbles.    x = d * q + m,         q in [0, 15]
//   Q5_0  32 values: f16 d; 32 high bits; nibbles.     x = d * (q - 16),      q in [0, 31]
//   Q5_1  32 values: f16 d, m; 32 high bits; nibbles.  x = d * q + m,         q in [0, 31]
//   Q8_0  32 values: f16 d; 32 int8.                   x = d * q,             q in [-128, 127]
//   IQ4_NL 32 values: f16 d; nibbles indexing kIq4NlValues (a non-linear grid).
//   Q2_K  256 values in 16 groups of 16: 4-bit scale and min per group, f16 d and dmin.
//         x = d * sc * q - dmin * m,  q in [0, 3]
//   Q3_K  256 values in 16 groups of 16: 6-bit signed scales (stored +32), f16 d, 2 low bits
//         and 1 high bit per value. x = d * (sc - 32) * (q - 4), q = low2 + 4 * high in [0, 7]
//   Q4_K  256 values in 8 groups of 32: 6-bit scale and min per group, f16 d and dmin.
//         x = d * sc * q - dmin * m,  q in [0, 15]
//   Q5_K  as Q4_K with a fifth bit per value, q in [0, 31]
//   Q6_K  256 values in 16 groups of 16: int8 scales, f16 d, 4 low + 2 high bits per value.
//         x = d * sc * (q - 32),  q in [0, 63]
//   IQ4_XS 256 values in 8 groups of 32: 6-bit scales (stored +32), f16 d, nibbles indexing
//         kIq4NlValues. x = d * (ls - 32) * kIq4NlValues[q]
//
// Activations are quantized to Q8_0 (32 values: f16 d, int8 q), Q8_1 (as Q8_0 plus f16
// s = d * sum(q)) or Q8_K (256 values: f32 d, int8 q, int16 sums of each 16).
//
// Thread-safety: plain data and pure functions.
#ifndef KVSERVE_ENGINE_QUANT_GGML_BLOCKS_H_
#define KVSERVE_ENGINE_QUANT_GGML_BLOCKS_H_

#include <cstdint>

namespace kvserve::engine::quant {

inline constexpr int kQK = 256;  // values in a K-quant super-block
inline constexpr int kQ32 = 32;  // values in a legacy block

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];  // value j in the low nibble of qs[j], value j + 16 in the high nibble
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit j (little-endian 32-bit word) is the fifth bit of value j
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockIq4Nl {
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ2_K {
  uint8_t scales[16];  // low nibble scale, high nibble min, per group of 16
  uint8_t qs[64];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];  // 16 6-bit scales, see Q3KScales
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 6-bit scales and 8 6-bit mins, see Q4KScaleMin
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
struct BlockIq4Xs {
  uint16_t d;
  uint16_t scales_h;  // the high 2 bits of each group's 6-bit scale
  uint8_t scales_l[4];
  uint8_t qs[128];
};
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[32];
};
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockIq4Nl) == 18);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockIq4Xs) == 136);
static_assert(sizeof(BlockQ8_1) == 36 && sizeof(BlockQ8_K) == 292);

// The 16 values of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
inline constexpr int8_t kIq4NlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// Q4_K / Q5_K: the 6-bit scale and min of group j (0..7) from the 12 packed bytes. Groups 0-3
// keep theirs in the low 6 bits of bytes j and j + 4; groups 4-7 in the nibbles of bytes
// j + 4 with their top two bits in the top bits of bytes j - 4 and j.
inline void Q4KScaleMin(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q3_K: the 16 signed scales (already minus 32) from the 12 packed bytes: the low nibbles of
// scales are in bytes 0-7 (groups 0-7 low, 8-15 high nibble), the top two bits in bytes 8-11.
inline void Q3KScales(const uint8_t* packed, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int high = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

// IQ4_XS: the 6-bit scale of group j (0..7), minus 32.
inline int Iq4XsScale(const BlockIq4Xs& b, int j) {
  const int low = (b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF;
  const int high = (b.scales_h >> (2 * j)) & 3;
  return (low | (high << 4)) - 32;
}

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_GGML_BLOCKS_H_
