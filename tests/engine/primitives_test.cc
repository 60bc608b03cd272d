// Linear (oneDNN matmul with pre-packed weights) against a naive double-precision matmul.
#include "engine/primitives.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/cpu_features.h"
#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

constexpr int64_t kMaxRows = 300;
const int64_t kRowCounts[] = {1, 2, 7, 33, 64, 300};

std::vector<float> RandomVector(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Rounds to the nearest bfloat16 (8 significant bits), ties to even, by scaling the value so
// that its significand becomes an integer and rounding that in double (std::nearbyint uses the
// default round-half-even mode). Independent of the bit manipulation in the code under test.
float RoundToBf16(float f) {
  if (f == 0.0f || !std::isfinite(f)) return f;
  int exponent;
  std::frexp(f, &exponent);  // f = s * 2^exponent with 0.5 <= |s| < 1
  const double scaled = std::ldexp(static_cast<double>(f), 8 - exponent);  // 8 bits: [128, 256)
  return static_cast<float>(std::ldexp(std::nearbyint(scaled), exponent - 8));
}

std::vector<float> RoundAllToBf16(std::vector<float> v) {
  for (float& f : v) f = RoundToBf16(f);
  return v;
}

// y[m, out] = x[m, in] · w[out, in]ᵀ (+ bias), in double.
std::vector<double> NaiveLinear(const std::vector<float>& x, int64_t m, const std::vector<float>& w,
                                int64_t out, int64_t in, const float* bias) {
  std::vector<double> y(m * out);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      const float* x_row = &x[i * in];
      const float* w_row = &w[o * in];
      // Four partial sums: independent chains keep this reference fast enough for seconds-long
      // tests; in double, the order does not matter at the tolerances checked.
      double partial[4] = {0.0, 0.0, 0.0, 0.0};
      int64_t k = 0;
      for (; k + 4 <= in; k += 4) {
        for (int j = 0; j < 4; ++j) {
          partial[j] += static_cast<double>(x_row[k + j]) * w_row[k + j];
        }
      }
      for (; k < in; ++k) partial[0] += static_cast<double>(x_row[k]) * w_row[k];
      y[i * out + o] =
          (partial[0] + partial[1]) + (partial[2] + partial[3]) + (bias != nullptr ? bias[o] : 0.0);
    }
  }
  return y;
}

// Largest |got - want| over the first m rows, relative to the largest |want| there.
double MaxRelativeError(const std::vector<float>& got, const std::vector<double>& want, int64_t m,
                        int64_t out) {
  double max_want = 0.0, max_diff = 0.0;
  for (int64_t i = 0; i < m * out; ++i) {
    max_want = std::max(max_want, std::abs(want[i]));
    max_diff = std::max(max_diff, std::abs(static_cast<double>(got[i]) - want[i]));
  }
  return max_diff / std::max(max_want, 1e-30);
}

struct Shape {
  int64_t in;
  int64_t out;
};

void PrintTo(const Shape& shape, std::ostream* os) {
  *os << "in=" << shape.in << " out=" << shape.out;
}

class LinearTest : public ::testing::TestWithParam<Shape> {};

// Runs one Linear per bias setting through every row count in two orders (the second pass
// reuses cached primitives) and repeats each call, comparing every output with `want_nobias` /
// the bias-shifted reference. Row i of y only depends on row i of x, so one reference for
// kMaxRows rows covers every m.
void CheckLinear(WeightDType dtype, const Shape& shape, const std::vector<float>& x,
                 const std::vector<float>& w, const std::vector<float>& bias,
                 const std::vector<double>& want_nobias, double tolerance) {
  for (const bool with_bias : {false, true}) {
    SCOPED_TRACE(with_bias ? "with bias" : "without bias");
    absl::StatusOr<std::unique_ptr<Linear>> linear =
        Linear::Create(w.data(), shape.out, shape.in, dtype, with_bias ? bias.data() : nullptr);
    ASSERT_TRUE(linear.ok()) << linear.status();
    EXPECT_EQ((*linear)->in_features(), shape.in);
    EXPECT_EQ((*linear)->out_features(), shape.out);
    EXPECT_EQ((*linear)->dtype(), dtype);

    std::vector<double> want = want_nobias;
    if (with_bias) {
      for (int64_t i = 0; i < kMaxRows; ++i) {
        for (int64_t o = 0; o < shape.out; ++o) want[i * shape.out + o] += bias[o];
      }
    }
    std::vector<int64_t> order(std::begin(kRowCounts), std::end(kRowCounts));
    std::vector<int64_t> reversed(order.rbegin(), order.rend());
    order.insert(order.end(), reversed.begin(), reversed.end());
    for (const int64_t m : order) {
      SCOPED_TRACE("m=" + std::to_string(m));
      std::vector<float> y(m * shape.out, std::nanf(""));
      (*linear)->Forward(x.data(), m, y.data());
      EXPECT_LE(MaxRelativeError(y, want, m, shape.out), tolerance)
          << "impl " << (*linear)->impl_name();
      EXPECT_FALSE((*linear)->impl_name().empty());
      // The same primitive on the same input gives the same bits.
      std::vector<float> again(m * shape.out, std::nanf(""));
      (*linear)->Forward(x.data(), m, again.data());
      EXPECT_EQ(y, again);
    }
  }
}

// f32: products and sums in f32 over K <= 2560 terms; observed errors reach ~1e-6 of max|y|
// (gemm:jit on an AVX2 host), so 1e-5 leaves room for other summation orders while a wrong
// layout or a dropped bias is off by O(1).
TEST_P(LinearTest, F32MatchesNaiveDoubleMatmul) {
  const Shape shape = GetParam();
  const std::vector<float> x = RandomVector(kMaxRows * shape.in, 1);
  const std::vector<float> w = RandomVector(shape.out * shape.in, 2);
  const std::vector<float> bias = RandomVector(shape.out, 3);
  const std::vector<double> want = NaiveLinear(x, kMaxRows, w, shape.out, shape.in, nullptr);
  CheckLinear(WeightDType::kF32, shape, x, w, bias, want, 1e-5);
}

// bf16: the reference multiplies the bf16-rounded x and W exactly (in double). A product of two
// bf16 values has at most 16 significant bits, so oneDNN forms it exactly in f32; the only
// difference left is f32 accumulation (~sqrt(K) * 2^-24 relative in practice). 1e-3 of max|y|
// allows for that with a wide margin, yet catches rounding x or W by truncation instead of
// nearest-even (a systematic ~2^-9 relative shift per factor, several 1e-3 of max|y|).
TEST_P(LinearTest, Bf16MatchesNaiveMatmulOfRoundedInputs) {
  const Shape shape = GetParam();
  const std::vector<float> w = RandomVector(shape.out * shape.in, 2);
  absl::StatusOr<std::unique_ptr<Linear>> probe =
      Linear::Create(w.data(), shape.out, shape.in, WeightDType::kBF16);
  if (!probe.ok()) {
    // oneDNN 2.x only runs bf16 matmul on AVX-512 hosts; elsewhere Create must say so.
    EXPECT_FALSE(CpuFeatures().avx512_bf16) << probe.status();
    EXPECT_EQ(probe.status().code(), absl::StatusCode::kFailedPrecondition) << probe.status();
    GTEST_SKIP() << "bf16 matmul unavailable on this CPU: " << probe.status();
  }
  const std::vector<float> x = RandomVector(kMaxRows * shape.in, 1);
  const std::vector<float> bias = RandomVector(shape.out, 3);
  const std::vector<double> want =
      NaiveLinear(RoundAllToBf16(x), kMaxRows, RoundAllToBf16(w), shape.out, shape.in, nullptr);
  CheckLinear(WeightDType::kBF16, shape, x, w, bias, want, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearTest,
                         ::testing::Values(Shape{3, 5}, Shape{960, 1600}, Shape{2560, 960}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return "in" + std::to_string(info.param.in) + "_out" +
                                  std::to_string(info.param.out);
                         });

TEST(LinearTest, LargeShapesUseOptimizedKernels) {
  const std::vector<float> w = RandomVector(1600 * 960, 4);
  absl::StatusOr<std::unique_ptr<Linear>> linear =
      Linear::Create(w.data(), 1600, 960, WeightDType::kF32);
  ASSERT_TRUE(linear.ok()) << linear.status();
  const std::vector<float> x = RandomVector(64 * 960, 5);
  std::vector<float> y(64 * 1600);
  for (const int64_t m : {1, 8, 32, 64}) {
    (*linear)->Forward(x.data(), m, y.data());
    EXPECT_EQ((*linear)->impl_name().find("ref"), std::string_view::npos)
        << "m=" << m << " impl " << (*linear)->impl_name();
  }
}

TEST(LinearTest, RejectsBadArguments) {
  const float w[6] = {};
  EXPECT_EQ(Linear::Create(nullptr, 2, 3, WeightDType::kF32).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Linear::Create(w, 0, 3, WeightDType::kF32).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Linear::Create(w, 2, -1, WeightDType::kF32).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WeightDTypeTest, DefaultFollowsCpuBf16Support) {
  EXPECT_EQ(DefaultWeightDType(),
            CpuFeatures().avx512_bf16 ? WeightDType::kBF16 : WeightDType::kF32);
  EXPECT_EQ(WeightDTypeName(WeightDType::kF32), "f32");
  EXPECT_EQ(WeightDTypeName(WeightDType::kBF16), "bf16");
}

// The test's own bf16 rounding, checked on hand-derived cases.
TEST(WeightDTypeTest, TestRoundingToBf16IsNearestEven) {
  EXPECT_EQ(RoundToBf16(1.0f), 1.0f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(RoundToBf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
  EXPECT_EQ(RoundToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(RoundToBf16(-(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))),
            -(1.0f + std::ldexp(1.0f, -7)));
  EXPECT_EQ(RoundToBf16(255.5f), 256.0f);  // 255.5 needs 9 bits; halfway, even is 256.
}

}  // namespace
}  // namespace kvserve::engine
