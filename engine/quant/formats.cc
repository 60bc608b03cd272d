#include "engine/quant/formats.h"

#include <cstring>

namespace kvserve::engine::quant {
namespace {

using T = GgmlType;

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Low nibble of qs[j] is value j, high nibble value j + 16 (Q4_0, Q4_1, Q5_*, IQ4_NL).
void Nibbles32(const uint8_t* qs, uint8_t* u) {
  for (int j = 0; j < 16; ++j) {
    u[j] = qs[j] & 0xF;
    u[j + 16] = qs[j] >> 4;
  }
}

// Adds the fifth bits of a 32-value block: bit j of the little-endian word is value j's.
void FifthBits32(const uint8_t* qh, uint8_t* u) {
  uint32_t h;
  std::memcpy(&h, qh, sizeof(h));
  for (int j = 0; j < 32; ++j) u[j] |= ((h >> j) & 1) << 4;
}

void DecodeLegacy(const FormatInfo& f, const uint8_t* b, DecodedBlock* out) {
  out->d = Load16(b);
  switch (f.type) {
    case T::kQ4_0:
    case T::kIQ4_NL:
      Nibbles32(b + 2, out->u);
      break;
    case T::kQ4_1:
      out->d2 = Load16(b + 2);
      Nibbles32(b + 4, out->u);
      break;
    case T::kQ5_0:
      Nibbles32(b + 6, out->u);
      FifthBits32(b + 2, out->u);
      break;
    case T::kQ5_1:
      out->d2 = Load16(b + 2);
      Nibbles32(b + 8, out->u);
      FifthBits32(b + 4, out->u);
      break;
    case T::kQ8_0:
      for (int j = 0; j < 32; ++j) out->u[j] = static_cast<uint8_t>(b[2 + j] ^ 0x80);
      break;
    default:
      break;
  }
}

// Q2_K and Q3_K share the arrangement of their 2-bit planes: value 128n + 32j + 16h + l is
// bits 2j..2j+1 of qs[32n + 16h + l], in group 8n + 2j + h.
int TwoBitIndex(int n, int j, int h, int l) { return 128 * n + 32 * j + 16 * h + l; }

void DecodeQ2K(const BlockQ2_K& b, DecodedBlock* out) {
  out->d = b.d;
  out->d2 = b.dmin;
  for (int g = 0; g < 16; ++g) {
    out->scale[g] = static_cast<int8_t>(b.scales[g] & 0xF);
    out->min[g] = static_cast<int8_t>(b.scales[g] >> 4);
  }
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j)
      for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 16; ++l)
          out->u[TwoBitIndex(n, j, h, l)] = (b.qs[32 * n + 16 * h + l] >> (2 * j)) & 3;
}

void DecodeQ3K(const BlockQ3_K& b, DecodedBlock* out) {
  out->d = b.d;
  Q3KScales(b.scales, out->scale);
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j)
      for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 16; ++l) {
          const int low = (b.qs[32 * n + 16 * h + l] >> (2 * j)) & 3;
          const int high = (b.hmask[16 * h + l] >> (4 * n + j)) & 1;
          out->u[TwoBitIndex(n, j, h, l)] = static_cast<uint8_t>(low | (high << 2));
        }
}

// Q4_K / Q5_K: 64 values per 32 bytes of qs, group 2j in the low nibbles, 2j + 1 in the high.
void DecodeQ45K(const uint8_t* scales, const uint8_t* qs, const uint8_t* qh, DecodedBlock* out) {
  for (int g = 0; g < 8; ++g) {
    int scale, min;
    Q4KScaleMin(g, scales, &scale, &min);
    out->scale[g] = static_cast<int8_t>(scale);
    out->min[g] = static_cast<int8_t>(min);
  }
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l) {
      uint8_t lo = qs[32 * j + l] & 0xF, hi = qs[32 * j + l] >> 4;
      if (qh != nullptr) {
        lo |= ((qh[l] >> (2 * j)) & 1) << 4;
        hi |= ((qh[l] >> (2 * j + 1)) & 1) << 4;
      }
      out->u[64 * j + l] = lo;
      out->u[64 * j + 32 + l] = hi;
    }
}

void DecodeQ6K(const BlockQ6_K& b, DecodedBlock* out) {
  out->d = b.d;
  for (int g = 0; g < 16; ++g) out->scale[g] = b.scales[g];
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b.ql + 64 * n;
    const uint8_t* qh = b.qh + 32 * n;
    uint8_t* u = out->u + 128 * n;
    for (int l = 0; l < 32; ++l) {
      u[l] = (ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4);
      u[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
      u[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
      u[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
    }
  }
}

void DecodeIq4Xs(const BlockIq4Xs& b, DecodedBlock* out) {
  out->d = b.d;
  for (int g = 0; g < 8; ++g) {
    out->scale[g] = static_cast<int8_t>(Iq4XsScale(b, g));
    Nibbles32(b.qs + 16 * g, out->u + 32 * g);
  }
}

template <class Block>
Block Read(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  return b;
}

}  // namespace

std::string_view ActKindName(ActKind kind) {
  switch (kind) {
    case ActKind::kQ8_0:
      return "Q8_0";
    case ActKind::kQ8_1:
      return "Q8_1";
    case ActKind::kQ8_K:
      return "Q8_K";
  }
  return "unknown";
}

void DecodeBlock(const FormatInfo& f, const uint8_t* block, DecodedBlock* out) {
  std::memset(out, 0, sizeof(*out));
  for (int g = 0; g < 16; ++g) out->scale[g] = 1;
  switch (f.type) {
    case T::kQ2_K:
      return DecodeQ2K(Read<BlockQ2_K>(block), out);
    case T::kQ3_K:
      return DecodeQ3K(Read<BlockQ3_K>(block), out);
    case T::kQ4_K: {
      const BlockQ4_K b = Read<BlockQ4_K>(block);
      out->d = b.d;
      out->d2 = b.dmin;
      return DecodeQ45K(b.scales, b.qs, nullptr, out);
    }
    case T::kQ5_K: {
      const BlockQ5_K b = Read<BlockQ5_K>(block);
      out->d = b.d;
      out->d2 = b.dmin;
      return DecodeQ45K(b.scales, b.qs, b.qh, out);
    }
    case T::kQ6_K:
      return DecodeQ6K(Read<BlockQ6_K>(block), out);
    case T::kIQ4_XS:
      return DecodeIq4Xs(Read<BlockIq4Xs>(block), out);
    default:
      return DecodeLegacy(f, block, out);
  }
}

void DequantizeRow(const FormatInfo& f, const uint8_t* src, float* dst, int64_t n) {
  DecodedBlock b;
  for (int64_t i = 0; i < n / f.block_k; ++i) {
    DecodeBlock(f, src + i * f.block_bytes, &b);
    const float d = HalfToFloat(b.d);
    const float d2 = HalfToFloat(b.d2);
    float* y = dst + i * f.block_k;
    for (int g = 0; g < f.groups(); ++g) {
      const float dl = d * static_cast<float>(b.scale[g]);
      const float ml = d2 * static_cast<float>(b.min[g]);
      for (int l = g * f.group_k; l < (g + 1) * f.group_k; ++l) {
        const float x = dl * static_cast<float>(QuantValue(f, b.u[l]));
        y[l] = f.mins ? x - ml : f.add_min ? x + d2 : x;
      }
    }
  }
}

}  // namespace kvserve::engine::quant
