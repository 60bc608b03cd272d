// Dequantization of every quantized type on blocks written by hand, against values derived by
// hand from the block layouts (ggml's ggml-common.h and dequantize_row_*), and the reference
// quantizers on hand-checked inputs. The derivation of each expected value is in its comment.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/dtype.h"
#include "engine/quant/formats.h"
#include "engine/quant/ggml_blocks.h"
#include "engine/quant/quantize.h"
#include "gtest/gtest.h"

namespace kvserve::engine::quant {
namespace {

template <class Block>
std::vector<float> Dequant(const Block& b, GgmlType type) {
  const FormatInfo* f = FindFormat(type);
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(static_cast<int>(sizeof(Block)), f->block_bytes);
  std::vector<float> out(f->block_k);
  DequantizeRow(*f, reinterpret_cast<const uint8_t*>(&b), out.data(), f->block_k);
  return out;
}

constexpr uint16_t kHalf1 = 0x3C00, kHalf05 = 0x3800, kHalf025 = 0x3400, kHalf2 = 0x4000,
                   kHalfMinus1 = 0xBC00;

TEST(QuantFormatsTest, Q4_0) {
  BlockQ4_0 b{};
  b.d = kHalf05;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequant(b, GgmlType::kQ4_0);
  EXPECT_EQ(y[0], -4.0f);   // low nibble 0: (0 - 8) * 0.5
  EXPECT_EQ(y[15], 3.5f);   // low nibble 15: (15 - 8) * 0.5
  EXPECT_EQ(y[16], 3.5f);   // value 16 = high nibble of qs[0] = 15
  EXPECT_EQ(y[31], -4.0f);  // high nibble of qs[15] = 0
}

TEST(QuantFormatsTest, Q4_1) {
  BlockQ4_1 b{};
  b.d = kHalf025;
  b.m = kHalfMinus1;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | (j << 4));
  const std::vector<float> y = Dequant(b, GgmlType::kQ4_1);
  EXPECT_EQ(y[0], -1.0f);   // 0 * 0.25 - 1
  EXPECT_EQ(y[4], 0.0f);    // 4 * 0.25 - 1
  EXPECT_EQ(y[31], 2.75f);  // 15 * 0.25 - 1
}

TEST(QuantFormatsTest, Q5_0) {
  BlockQ5_0 b{};
  b.d = kHalf1;
  const uint32_t qh = 0x0000FFFF;  // values 0..15 have the fifth bit
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | (j << 4));
  const std::vector<float> y = Dequant(b, GgmlType::kQ5_0);
  EXPECT_EQ(y[3], 3.0f);     // (3 | 16) - 16
  EXPECT_EQ(y[19], -13.0f);  // value 16 + 3: high nibble 3, no fifth bit: 3 - 16
  EXPECT_EQ(y[31], -1.0f);   // 15 - 16
}

TEST(QuantFormatsTest, Q5_1) {
  BlockQ5_1 b{};
  b.d = kHalf05;
  b.m = kHalf2;
  const uint32_t qh = 0xFFFF0000;  // values 16..31 have the fifth bit
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(15 - j);
  const std::vector<float> y = Dequant(b, GgmlType::kQ5_1);
  EXPECT_EQ(y[0], 9.5f);    // 15 * 0.5 + 2
  EXPECT_EQ(y[15], 2.0f);   // 0 * 0.5 + 2
  EXPECT_EQ(y[20], 10.0f);  // high nibble 0 with the fifth bit: 16 * 0.5 + 2
}

TEST(QuantFormatsTest, Q8_0) {
  BlockQ8_0 b{};
  b.d = kHalf2;
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j - 16);
  const std::vector<float> y = Dequant(b, GgmlType::kQ8_0);
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[31], 30.0f);
}

TEST(QuantFormatsTest, Iq4Nl) {
  BlockIq4Nl b{};
  b.d = kHalf05;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequant(b, GgmlType::kIQ4_NL);
  EXPECT_EQ(y[0], -63.5f);  // grid[0] = -127, * 0.5
  EXPECT_EQ(y[8], 0.5f);    // grid[8] = 1
  EXPECT_EQ(y[16], 56.5f);  // value 16 = high nibble of qs[0] = 15: grid[15] = 113
}

// Q4_K / Q5_K scale bytes for scales {1, 2, 3, 4, 17, 33, 63, 0} and mins {0, 1, 2, 3, 16, 5,
// 63, 7}: bytes 0-3 hold scales 0-3 plus the top bits of scales 4-7 in bits 6-7, bytes 4-7 the
// mins likewise, bytes 8-11 the low nibbles of scale (low) and min (high) of groups 4-7.
constexpr uint8_t kKScales[12] = {0x41, 0x82, 0xC3, 0x04, 0x40, 0x01,
                                  0xC2, 0x03, 0x01, 0x51, 0xFF, 0x70};

TEST(QuantFormatsTest, Q4KScaleMinUnpacking) {
  const int want_scale[8] = {1, 2, 3, 4, 17, 33, 63, 0};
  const int want_min[8] = {0, 1, 2, 3, 16, 5, 63, 7};
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    Q4KScaleMin(j, kKScales, &scale, &min);
    EXPECT_EQ(scale, want_scale[j]) << j;
    EXPECT_EQ(min, want_min[j]) << j;
  }
}

TEST(QuantFormatsTest, Q4_K) {
  BlockQ4_K b{};
  b.d = kHalf1;
  b.dmin = kHalf05;
  std::memcpy(b.scales, kKScales, 12);
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l)
      b.qs[32 * j + l] = static_cast<uint8_t>((l % 16) | (((l + j) % 16) << 4));
  const std::vector<float> y = Dequant(b, GgmlType::kQ4_K);
  EXPECT_EQ(y[5], 5.0f);        // group 0: 1 * 1 * 5 - 0.5 * 0
  EXPECT_EQ(y[32 + 7], 13.5f);  // group 1 (high nibbles of qs[0..31]), q = 7: 2 * 7 - 0.5 * 1
  EXPECT_EQ(y[131], 43.0f);     // group 4, low nibble of qs[64 + 3] = 3: 17 * 3 - 0.5 * 16
  EXPECT_EQ(y[161], 96.5f);     // group 5, high nibble of qs[64 + 1] = 3: 33 * 3 - 0.5 * 5
  EXPECT_EQ(y[234], -3.5f);     // group 7 (scale 0), high nibble of qs[96 + 10]: -0.5 * 7
}

TEST(QuantFormatsTest, Q5_K) {
  BlockQ5_K b{};
  b.d = kHalf05;
  b.dmin = kHalf1;
  std::memcpy(b.scales, kKScales, 12);
  for (int l = 0; l < 32; ++l) b.qh[l] = static_cast<uint8_t>(l);  // bit 2j: value 64j + l
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l)
      b.qs[32 * j + l] = static_cast<uint8_t>((l % 16) | (((l + j) % 16) << 4));
  const std::vector<float> y = Dequant(b, GgmlType::kQ5_K);
  EXPECT_EQ(y[5], 10.5f);    // qh[5] bit 0 set: q = 5 + 16 = 21; group 0: 0.5 * 1 * 21 - 0
  EXPECT_EQ(y[39], 22.0f);   // value 32 + 7: nibble 7, qh[7] bit 1 set: 23; 1 * 23 - 1 * 1
  EXPECT_EQ(y[84], 28.0f);   // value 64 + 20: nibble 4, qh[20] bit 2 set: 20; 1.5 * 20 - 2
  EXPECT_EQ(y[131], 9.5f);   // value 128 + 3: nibble 3, qh[3] bit 4 clear; 8.5 * 3 - 16
  EXPECT_EQ(y[255], -7.0f);  // group 7 has scale 0: -1 * 7
}

TEST(QuantFormatsTest, Q6_K) {
  BlockQ6_K b{};
  b.d = kHalf025;
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
  for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>((i * 3) & 0xFF);
  const std::vector<float> y = Dequant(b, GgmlType::kQ6_K);
  EXPECT_EQ(y[0], 64.0f);    // ql[0] = 0, qh[0] = 0: q = -32; scale -8; 0.25 * -8 * -32
  EXPECT_EQ(y[45], 4.5f);    // low nibble of ql[45] = 13, bits 2-3 of qh[13] = 39: 1 -> 29 - 32;
                             // scale[2] = -6: 0.25 * -6 * -3
  EXPECT_EQ(y[127], 3.25f);  // high nibble of ql[63] = 3, bits 6-7 of qh[31] = 93: 1 -> 19 - 32;
                             // scale[7] = -1
  EXPECT_EQ(y[200], 20.0f);  // second half, value 72: high nibble of ql[72] = 4, bits 4-5 of
                             // qh[40] = 120: 3 -> 52 - 32 = 20; scale[12] = 4
}

TEST(QuantFormatsTest, Q3_K) {
  BlockQ3_K b{};
  b.d = kHalf05;
  // Stored scales 4g (signed 4g - 32): low nibbles in bytes 0-7 (g < 8 low, g >= 8 high
  // nibble), the top two bits of scales g, g+4, g+8, g+12 in byte 8 + g%4 at bits 0, 2, 4, 6.
  const uint8_t scales[12] = {0x00, 0x44, 0x88, 0xCC, 0x00, 0x44,
                              0x88, 0xCC, 0xE4, 0xE4, 0xE4, 0xE4};
  std::memcpy(b.scales, scales, 12);
  int8_t decoded[16];
  Q3KScales(b.scales, decoded);
  for (int g = 0; g < 16; ++g) EXPECT_EQ(decoded[g], 4 * g - 32) << g;
  for (int l = 0; l < 32; ++l) b.hmask[l] = static_cast<uint8_t>(l);  // bit v/32 of hmask[v%32]
  for (int i = 0; i < 64; ++i) b.qs[i] = static_cast<uint8_t>(i);
  const std::vector<float> y = Dequant(b, GgmlType::kQ3_K);
  EXPECT_EQ(y[0], 64.0f);     // low 0, no high bit: q = -4; scale -32: 0.5 * -32 * -4
  EXPECT_EQ(y[37], 36.0f);    // bits 2-3 of qs[5] = 1, bit 1 of hmask[5] = 0: -3; scale -24
  EXPECT_EQ(y[92], -6.0f);    // bits 4-5 of qs[28] = 1, bit 2 of hmask[28] = 1: q = 1; scale -12
  EXPECT_EQ(y[250], -56.0f);  // bits 6-7 of qs[58] = 0, bit 7 of hmask[26] = 0: -4; scale 28
}

TEST(QuantFormatsTest, Q2_K) {
  BlockQ2_K b{};
  b.d = kHalf05;
  b.dmin = kHalf025;
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<uint8_t>(g | ((15 - g) << 4));
  for (int i = 0; i < 64; ++i) b.qs[i] = static_cast<uint8_t>(i);
  const std::vector<float> y = Dequant(b, GgmlType::kQ2_K);
  EXPECT_EQ(y[0], -3.75f);    // q 0; scale 0, min 15: -0.25 * 15
  EXPECT_EQ(y[37], -2.25f);   // bits 2-3 of qs[5] = 1; scale 2, min 13: 1 * 1 - 3.25
  EXPECT_EQ(y[200], 11.25f);  // bits 4-5 of qs[32 + 8] = 2; scale 12, min 3: 6 * 2 - 0.75
}

TEST(QuantFormatsTest, Iq4Xs) {
  BlockIq4Xs b{};
  b.d = kHalf1;
  // 6-bit scales {32, 33, 31, 40, 0, 63, 32, 34} (signed {0, 1, -1, 8, -32, 31, 0, 2}): low
  // nibbles in scales_l, high two bits at bits 2g of scales_h.
  const uint8_t scales_l[4] = {0x10, 0x8F, 0xF0, 0x20};
  std::memcpy(b.scales_l, scales_l, 4);
  b.scales_h = 0xAC9A;
  for (int g = 0; g < 8; ++g)
    for (int j = 0; j < 16; ++j) b.qs[16 * g + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequant(b, GgmlType::kIQ4_XS);
  EXPECT_EQ(y[32], -127.0f);    // group 1 (scale 1), index 0
  EXPECT_EQ(y[114], 552.0f);    // group 3 (scale 8), high nibble of qs[50] = 13: 8 * 69
  EXPECT_EQ(y[133], 1120.0f);   // group 4 (scale -32), index 5: -32 * -35
  EXPECT_EQ(y[191], -3937.0f);  // group 5 (scale 31), high nibble of qs[95] = 0: 31 * -127
}

// ggml's reference quantizers on inputs whose blocks are known: Q8_0 rounds half away from
// zero (roundf) with d = amax / 127; Q5_0 takes d = max / -16 of the signed extreme.
TEST(QuantFormatsTest, ReferenceQuantizers) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) * 0.5f;  // amax 8 at j = 0
  absl::StatusOr<std::vector<uint8_t>> q8 = QuantizeRows(GgmlType::kQ8_0, x.data(), 1, 32);
  ASSERT_TRUE(q8.ok());
  BlockQ8_0 b8;
  std::memcpy(&b8, q8->data(), sizeof(b8));
  EXPECT_EQ(HalfToFloat(b8.d), HalfToFloat(FloatToHalf(8.0f / 127.0f)));
  EXPECT_EQ(b8.qs[0], -127);
  EXPECT_EQ(b8.qs[16], 0);
  EXPECT_EQ(b8.qs[17], 8);  // 0.5 * 127 / 8 = 7.9375 -> 8
  absl::StatusOr<std::vector<uint8_t>> q5 = QuantizeRows(GgmlType::kQ5_0, x.data(), 1, 32);
  ASSERT_TRUE(q5.ok());
  std::vector<float> back(32);
  DequantizeRow(*FindFormat(GgmlType::kQ5_0), q5->data(), back.data(), 32);
  // d = -8 / -16 = 0.5: every input is a multiple of 0.5 within [-16 d, 15 d], so exact.
  for (int j = 0; j < 32; ++j) EXPECT_EQ(back[j], x[j]) << j;
  EXPECT_EQ(quant::QuantTypeForRows(GgmlType::kQ4_K, 96), GgmlType::kQ5_0);
  EXPECT_EQ(quant::QuantTypeForRows(GgmlType::kQ4_K, 512), GgmlType::kQ4_K);
  EXPECT_FALSE(QuantizeRows(GgmlType::kQ4_K, x.data(), 1, 32).ok());
}

// Q4_K's quantizer keeps the error of smooth data within a fraction of each group's range.
TEST(QuantFormatsTest, Q4KQuantizerRoundTrip) {
  std::vector<float> x(512);
  for (int i = 0; i < 512; ++i) x[i] = std::sin(0.37f * i) * (1.0f + (i / 64) * 0.5f);
  absl::StatusOr<std::vector<uint8_t>> q = QuantizeRows(GgmlType::kQ4_K, x.data(), 2, 256);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 2 * sizeof(BlockQ4_K));
  std::vector<float> back(512);
  DequantizeRow(*FindFormat(GgmlType::kQ4_K), q->data(), back.data(), 512);
  for (int i = 0; i < 512; ++i) {
    const float range = 2.0f * (1.0f + (i / 64) * 0.5f);
    EXPECT_LE(std::fabs(back[i] - x[i]), range / 15.0f) << i;  // one 4-bit step of the group
  }
}

}  // namespace
}  // namespace kvserve::engine::quant
