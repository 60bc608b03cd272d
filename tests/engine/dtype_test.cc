#include "engine/dtype.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

bool IsHalfNan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }

// Independent half decoder straight from the IEEE definition.
double NaiveHalfValue(uint16_t h) {
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) return mantissa ? std::nan("") : sign * INFINITY;
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

// Nearest half to `x` (finite, |x| not beyond the rounding-to-infinity limit), ties to the even
// bit pattern, by searching the sorted positive half values.
uint16_t NaiveFloatToHalf(float x) {
  const double a = std::fabs(static_cast<double>(x));
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  if (a >= 65520.0) return sign | 0x7c00;
  // Binary search for the largest pattern whose value is <= a (values grow with the pattern).
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (NaiveHalfValue(mid) <= a) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  if (NaiveHalfValue(lo) == a) return sign | lo;
  const double below = a - NaiveHalfValue(lo);
  const double above = NaiveHalfValue(lo + 1) - a;
  if (below < above) return sign | lo;
  if (above < below) return sign | (lo + 1);
  return sign | ((lo & 1) ? lo + 1 : lo);
}

// Nearest bf16 to a finite float, ties to even, computed in double.
uint16_t NaiveFloatToBf16(float x) {
  const uint32_t bits = Bits(x);
  const uint16_t lo = static_cast<uint16_t>(bits >> 16);  // truncation toward zero
  const uint16_t hi = lo + 1;
  const double a = std::fabs(static_cast<double>(x));
  const double lo_value = std::fabs(static_cast<double>(FromBits(uint32_t{lo} << 16)));
  const double hi_value = (hi & 0x7fff) == 0x7f80
                              ? std::ldexp(1.0, 128)  // rounding to infinity uses 2^128
                              : std::fabs(static_cast<double>(FromBits(uint32_t{hi} << 16)));
  const double below = a - lo_value;
  const double above = hi_value - a;
  if (below < above) return lo;
  if (above < below) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(HalfTest, KnownBitPatterns) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.5f), 0xc100);
  EXPECT_EQ(FloatToHalf(0.5f), 0x3800);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(FloatToHalf(-INFINITY), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);     // smallest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.0f, -24)), 0x03ff);  // largest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalf(1e-10f), 0x0000);

  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc100), -2.5f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(HalfToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x7c00), INFINITY);
  EXPECT_EQ(HalfToFloat(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7c01)));  // signalling NaN stays NaN
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u);
}

TEST(HalfTest, NanStaysNan) {
  EXPECT_TRUE(IsHalfNan(FloatToHalf(std::nanf(""))));
  EXPECT_TRUE(IsHalfNan(FloatToHalf(FromBits(0x7f800001))));  // payload only in low bits
  EXPECT_TRUE(IsHalfNan(FloatToHalf(FromBits(0xff800001))));
  EXPECT_EQ(FloatToHalf(FromBits(0xffc00000)) & 0x8000, 0x8000);  // sign kept
}

TEST(HalfTest, RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 0x3c00 and 0x3c01: ties go to the even 0x3c00.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3 * 2^-11 is halfway between 0x3c01 and 0x3c02: even is 0x3c02.
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Just above halfway rounds up.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  // 65519 rounds down to 65504, 65520 is halfway to 2^16 (odd 0x7bff) so goes to infinity.
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-65520.0f), 0xfc00);
  // Subnormals: 2^-25 is halfway between 0 and 2^-24 -> 0; a bit more -> 2^-24.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(FloatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalf(3 * std::ldexp(1.0f, -25)), 0x0002);  // 1.5 units -> 2
  EXPECT_EQ(FloatToHalf(5 * std::ldexp(1.0f, -25)), 0x0002);  // 2.5 units -> 2
  // 1023.5 units: tie between the largest subnormal (odd) and the smallest normal.
  EXPECT_EQ(FloatToHalf(std::ldexp(2047.0f, -25)), 0x0400);
}

TEST(HalfTest, EveryHalfDecodesAsIeeeAndRoundTrips) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (IsHalfNan(static_cast<uint16_t>(h))) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), NaiveHalfValue(static_cast<uint16_t>(h))) << std::hex << h;
    ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
}

TEST(HalfTest, RandomFloatsMatchNaiveNearest) {
  std::mt19937 rng(7);
  // Exponents covering subnormal halfs through overflow.
  std::uniform_int_distribution<uint32_t> exponent(100, 144);
  std::uniform_int_distribution<uint32_t> mantissa(0, 0x7fffff);
  for (int i = 0; i < 4000; ++i) {
    const uint32_t bits = (rng() & 0x80000000u) | (exponent(rng) << 23) | mantissa(rng);
    const float x = FromBits(bits);
    ASSERT_EQ(FloatToHalf(x), NaiveFloatToHalf(x)) << x << " bits " << std::hex << bits;
  }
}

TEST(Bf16Test, KnownBitPatterns) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16(-2.5f), 0xc020);
  EXPECT_EQ(FloatToBf16(INFINITY), 0x7f80);
  EXPECT_EQ(FloatToBf16(-INFINITY), 0xff80);
  EXPECT_EQ(FloatToBf16(-0.0f), 0x8000);
  EXPECT_EQ(Bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0xc020), -2.5f);
  EXPECT_EQ(Bf16ToFloat(0x0001), FromBits(0x00010000));  // smallest bf16 subnormal
  EXPECT_TRUE(std::isnan(Bf16ToFloat(0x7fc0)));
  // NaN stays NaN even when its payload is only in the bits that are dropped.
  const uint16_t nan = FloatToBf16(FromBits(0x7f800001));
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x007f, 0);
  EXPECT_EQ(FloatToBf16(FromBits(0xffc00000)), 0xffc0);
}

TEST(Bf16Test, RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(FromBits(0x3f808000)), 0x3f80);  // tie, even down
  EXPECT_EQ(FloatToBf16(FromBits(0x3f818000)), 0x3f82);  // tie, even up
  EXPECT_EQ(FloatToBf16(FromBits(0x3f808001)), 0x3f81);  // above tie
  EXPECT_EQ(FloatToBf16(FromBits(0x3f807fff)), 0x3f80);  // below tie
  EXPECT_EQ(FloatToBf16(FromBits(0x7f7fffff)), 0x7f80);  // max float rounds to infinity
  EXPECT_EQ(FloatToBf16(FromBits(0x00000001)), 0x0000);  // smallest f32 subnormal
  EXPECT_EQ(FloatToBf16(FromBits(0x00008000)), 0x0000);  // subnormal tie, even down
  EXPECT_EQ(FloatToBf16(FromBits(0x00018000)), 0x0002);  // subnormal tie, even up
  EXPECT_EQ(FloatToBf16(FromBits(0x8000c000)), 0x8001);  // negative subnormal, above tie
}

TEST(Bf16Test, RandomFloatsMatchNaiveNearest) {
  std::mt19937 rng(11);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t bits = rng();
    const float x = FromBits(bits);
    if (std::isnan(x) || std::isinf(x)) continue;
    ASSERT_EQ(FloatToBf16(x), NaiveFloatToBf16(x)) << std::hex << bits;
  }
}

// Random bit patterns, including NaNs, infinities and subnormals.
std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> out(n);
  const uint32_t specials[] = {0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0x00000001,
                               0x00008000, 0x3f808000, 0x3f818000, 0x7f7fffff, 0x80000000};
  for (size_t i = 0; i < n; ++i) {
    out[i] = FromBits(i % 7 == 0 ? specials[(i / 7) % 10] : static_cast<uint32_t>(rng()));
  }
  return out;
}

TEST(Bf16Test, BulkMatchesScalarOnVectorAndTailPaths) {
  const std::vector<float> values = RandomFloats(4099, 3);
  // Sizes exercising: empty, tail only, exact vectors, vectors + tail; offset 1 makes the
  // pointers unaligned.
  for (int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1000, 4096, 4097}) {
    for (int64_t start : {0, 1}) {
      std::vector<uint16_t> bulk(n + 1, 0xdead);
      F32ToBf16(values.data() + start, bulk.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(bulk[i], FloatToBf16(values[start + i])) << "n=" << n << " i=" << i;
      }
      EXPECT_EQ(bulk[n], 0xdead) << "wrote past the end, n=" << n;

      std::vector<float> back(n + 1, -7.0f);
      Bf16ToF32(bulk.data(), back.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(Bits(back[i]), Bits(Bf16ToFloat(bulk[i]))) << "n=" << n << " i=" << i;
        ASSERT_EQ(Bits(back[i]), uint32_t{bulk[i]} << 16);
      }
      EXPECT_EQ(back[n], -7.0f) << "wrote past the end, n=" << n;
    }
  }
}

TEST(GgmlTypeTest, TraitsMatchGgml) {
  struct Expected {
    uint32_t id;
    const char* name;
    int64_t block_size, block_bytes;
  };
  // From ggml's block structs (ggml-common.h), counted by hand.
  const Expected expected[] = {
      {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
      {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
      {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
      {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
      {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
      {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
      {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
      {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
      {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},
  };
  for (const Expected& e : expected) {
    absl::StatusOr<GgmlTypeTraits> traits = GetGgmlTypeTraits(e.id);
    ASSERT_TRUE(traits.ok()) << e.id;
    EXPECT_EQ(traits->name, e.name);
    EXPECT_EQ(traits->block_size, e.block_size) << e.name;
    EXPECT_EQ(traits->block_bytes, e.block_bytes) << e.name;
    EXPECT_EQ(GgmlTypeName(static_cast<GgmlType>(e.id)), e.name);
  }
  for (uint32_t id : {4u, 5u, 31u, 1000u, 0xffffffffu}) {
    absl::StatusOr<GgmlTypeTraits> traits = GetGgmlTypeTraits(id);
    ASSERT_FALSE(traits.ok()) << id;
    EXPECT_NE(std::string(traits.status().message()).find(std::to_string(id)), std::string::npos);
  }
  EXPECT_EQ(GgmlTypeName(static_cast<GgmlType>(99)), "unknown(99)");
}

TEST(GgmlTypeTest, RowBytes) {
  EXPECT_EQ(*GgmlRowBytes(GgmlType::kF32, 10), 40);
  EXPECT_EQ(*GgmlRowBytes(GgmlType::kQ4_0, 64), 36);
  EXPECT_EQ(*GgmlRowBytes(GgmlType::kQ6_K, 512), 420);
  EXPECT_EQ(*GgmlRowBytes(GgmlType::kQ8_0, 0), 0);
  absl::StatusOr<int64_t> bad = GgmlRowBytes(GgmlType::kQ8_0, 33);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("Q8_0"), std::string::npos);
  EXPECT_FALSE(GgmlRowBytes(GgmlType::kF32, -4).ok());
  EXPECT_FALSE(GgmlRowBytes(GgmlType::kF64, std::numeric_limits<int64_t>::max()).ok());
  EXPECT_FALSE(GgmlRowBytes(static_cast<GgmlType>(4), 32).ok());
}

TEST(GgmlTypeTest, SupportedWeightTypes) {
  EXPECT_TRUE(IsSupportedWeightType(GgmlType::kF32));
  EXPECT_TRUE(IsSupportedWeightType(GgmlType::kF16));
  EXPECT_TRUE(IsSupportedWeightType(GgmlType::kBF16));
  EXPECT_TRUE(IsSupportedWeightType(GgmlType::kQ8_0));
  EXPECT_TRUE(IsSupportedWeightType(GgmlType::kQ4_0));
  EXPECT_TRUE(IsSupportedWeightType(GgmlType::kQ4_K));
  EXPECT_TRUE(IsSupportedWeightType(GgmlType::kIQ4_XS));
  EXPECT_FALSE(IsSupportedWeightType(GgmlType::kIQ2_XXS));
  EXPECT_FALSE(IsSupportedWeightType(GgmlType::kQ8_K));  // activations only
}

TEST(ConvertToF32Test, F32F16Bf16) {
  const float f32[3] = {1.5f, -0.25f, 3e38f};
  float out[3];
  ASSERT_TRUE(ConvertToF32(GgmlType::kF32, f32, out, 3).ok());
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[2], 3e38f);

  // Little-endian f16 bytes: 1.0, -2.5, 65504, smallest subnormal; starting at an odd address.
  const uint8_t f16_bytes[] = {0xaa, 0x00, 0x3c, 0x00, 0xc1, 0xff, 0x7b, 0x01, 0x00};
  float f16_out[4];
  ASSERT_TRUE(ConvertToF32(GgmlType::kF16, f16_bytes + 1, f16_out, 4).ok());
  EXPECT_EQ(f16_out[0], 1.0f);
  EXPECT_EQ(f16_out[1], -2.5f);
  EXPECT_EQ(f16_out[2], 65504.0f);
  EXPECT_EQ(f16_out[3], std::ldexp(1.0f, -24));

  const uint8_t bf16_bytes[] = {0x80, 0x3f, 0x20, 0xc0, 0x80, 0x7f};  // 1.0, -2.5, inf
  float bf16_out[3];
  ASSERT_TRUE(ConvertToF32(GgmlType::kBF16, bf16_bytes, bf16_out, 3).ok());
  EXPECT_EQ(bf16_out[0], 1.0f);
  EXPECT_EQ(bf16_out[1], -2.5f);
  EXPECT_EQ(bf16_out[2], INFINITY);
}

TEST(ConvertToF32Test, Q8_0HandBuiltBlocks) {
  // Two blocks: scale 0.5 (f16 0x3800) and scale -2.0 (f16 0xc000), then 32 int8 each.
  std::vector<uint8_t> bytes;
  bytes.push_back(0x00);
  bytes.push_back(0x38);
  for (int j = 0; j < 32; ++j) bytes.push_back(static_cast<uint8_t>(static_cast<int8_t>(j - 16)));
  bytes.push_back(0x00);
  bytes.push_back(0xc0);
  const int8_t second[4] = {-128, 127, 0, -1};
  for (int j = 0; j < 32; ++j) bytes.push_back(static_cast<uint8_t>(second[j % 4]));
  ASSERT_EQ(bytes.size(), 68u);

  std::vector<float> out(64);
  ASSERT_TRUE(ConvertToF32(GgmlType::kQ8_0, bytes.data(), out.data(), 64).ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j - 16)) << j;
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[32 + j], -2.0f * second[j % 4]) << j;
  EXPECT_EQ(out[32], 256.0f);
  EXPECT_EQ(out[33], -254.0f);
}

TEST(ConvertToF32Test, Errors) {
  float out[256];
  const uint8_t zeros[256] = {};
  absl::Status unsupported = ConvertToF32(GgmlType::kIQ2_XXS, zeros, out, 256);
  ASSERT_FALSE(unsupported.ok());
  EXPECT_NE(std::string(unsupported.message()).find("IQ2_XXS"), std::string::npos);
  absl::Status partial = ConvertToF32(GgmlType::kQ8_0, zeros, out, 16);
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(std::string(partial.message()).find("block size"), std::string::npos);
}

}  // namespace
}  // namespace kvserve::engine
