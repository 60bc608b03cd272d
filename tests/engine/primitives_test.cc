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
    absl::StatusOr<std::unique_ptr<OneDnnLinear>> linear = OneDnnLinear::Create(
        w.data(), shape.out, shape.in, dtype, with_bias ? bias.data() : nullptr);
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
  absl::StatusOr<std::unique_ptr<OneDnnLinear>> probe =
      OneDnnLinear::Create(w.data(), shape.out, shape.in, WeightDType::kBF16);
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

// int8: per-output-channel weights w ≈ s_w[n]·qw with qw in [-63, 63], s_w[n] = max_k|w[n,k]|/63,
// and per-row activations x ≈ s_x[i]·qx with qx in [-127, 127], s_x[i] = max_k|x[i,k]|/127,
// both rounded to nearest, so |x - x̂| <= s_x/2 and |w - ŵ| <= s_w/2. The integer products are
// exact, so y - ŷ = Σ_k (x - x̂)ŵ + Σ_k x(w - ŵ), and with Σ|ŵ| <= Σ|w| + K·s_w/2:
//   |ŷ[i,n] - y[i,n]| <= s_x[i]/2 · (Σ_k|w[n,k]| + K·s_w[n]/2) + s_w[n]/2 · Σ_k|x[i,k]|
// plus f32 rounding of the final scaling (allowed as 1e-5 · (Σ_k|x·w| + |bias|)). This
// worst-case bound is loose (errors mostly cancel), so the test also checks the RMS error against
// its expectation for independent uniform rounding errors, Σ_k (s_x²w² + s_w²x²)/12 (allowed
// 1.5x: the seeds are fixed, and an error from a wrong scale, layout or zero point is far
// larger), and that adding a bias shifts every output by exactly the bias (up to f32 rounding).
// Rows of x have magnitudes spread over 2^0..2^-7: quantizing with one scale per call instead of
// per row would break the per-row bound on the small rows.
struct Int8Bounds {
  std::vector<double> worst;     // [kMaxRows, out] worst-case |error| without bias
  std::vector<double> variance;  // [kMaxRows, out] expected error² for independent rounding
};

Int8Bounds ComputeInt8Bounds(const std::vector<float>& x, const std::vector<float>& w, int64_t out,
                             int64_t in) {
  Int8Bounds b{std::vector<double>(kMaxRows * out), std::vector<double>(kMaxRows * out)};
  std::vector<double> s_w(out), sum_abs_w(out);
  for (int64_t o = 0; o < out; ++o) {
    double max_abs = 0.0;
    for (int64_t k = 0; k < in; ++k) {
      max_abs = std::max(max_abs, std::abs(static_cast<double>(w[o * in + k])));
      sum_abs_w[o] += std::abs(w[o * in + k]);
    }
    s_w[o] = max_abs / 63;
  }
  for (int64_t i = 0; i < kMaxRows; ++i) {
    double max_abs = 0.0, sum_abs_x = 0.0;
    for (int64_t k = 0; k < in; ++k) {
      max_abs = std::max(max_abs, std::abs(static_cast<double>(x[i * in + k])));
      sum_abs_x += std::abs(x[i * in + k]);
    }
    const double s_x = max_abs / 127;
    for (int64_t o = 0; o < out; ++o) {
      double sum_abs_xw = 0.0, variance = 0.0;
      for (int64_t k = 0; k < in; ++k) {
        const double xv = x[i * in + k], wv = w[o * in + k];
        sum_abs_xw += std::abs(xv * wv);
        variance += (s_x * s_x * wv * wv + s_w[o] * s_w[o] * xv * xv) / 12;
      }
      b.worst[i * out + o] =
          s_x / 2 * (sum_abs_w[o] + in * s_w[o] / 2) + s_w[o] / 2 * sum_abs_x + 1e-5 * sum_abs_xw;
      b.variance[i * out + o] = variance;
    }
  }
  return b;
}

TEST_P(LinearTest, Int8WithinQuantizationBound) {
  const Shape shape = GetParam();
  std::vector<float> x = RandomVector(kMaxRows * shape.in, 1);
  for (int64_t i = 0; i < kMaxRows; ++i) {
    for (int64_t k = 0; k < shape.in; ++k)
      x[i * shape.in + k] = std::ldexp(x[i * shape.in + k], -(i % 8));
  }
  const std::vector<float> w = RandomVector(shape.out * shape.in, 2);
  const std::vector<float> bias = RandomVector(shape.out, 3);
  const std::vector<double> want = NaiveLinear(x, kMaxRows, w, shape.out, shape.in, nullptr);
  const Int8Bounds bounds = ComputeInt8Bounds(x, w, shape.out, shape.in);

  absl::StatusOr<std::unique_ptr<OneDnnLinear>> plain =
      OneDnnLinear::Create(w.data(), shape.out, shape.in, WeightDType::kInt8);
  absl::StatusOr<std::unique_ptr<OneDnnLinear>> biased =
      OneDnnLinear::Create(w.data(), shape.out, shape.in, WeightDType::kInt8, bias.data());
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(biased.ok()) << biased.status();
  EXPECT_EQ((*plain)->dtype(), WeightDType::kInt8);
  EXPECT_EQ((*plain)->in_features(), shape.in);
  EXPECT_EQ((*plain)->out_features(), shape.out);
  std::vector<int64_t> order(std::begin(kRowCounts), std::end(kRowCounts));
  order.insert(order.end(), std::rbegin(kRowCounts), std::rend(kRowCounts));
  for (const int64_t m : order) {
    SCOPED_TRACE("m=" + std::to_string(m));
    std::vector<float> y(m * shape.out, std::nanf(""));
    std::vector<float> y_bias(m * shape.out, std::nanf(""));
    (*plain)->Forward(x.data(), m, y.data());
    (*biased)->Forward(x.data(), m, y_bias.data());
    int64_t over_bound = 0, bias_mismatch = 0;
    double sum_sq_err = 0.0, sum_variance = 0.0;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t o = 0; o < shape.out; ++o) {
        const int64_t at = i * shape.out + o;
        const double err = y[at] - want[at];
        if (!(std::abs(err) <= bounds.worst[at])) ++over_bound;
        sum_sq_err += err * err;
        sum_variance += bounds.variance[at];
        const double shift = static_cast<double>(y_bias[at]) - y[at];
        if (!(std::abs(shift - bias[o]) <= 1e-6 * (std::abs(y[at]) + std::abs(bias[o])))) {
          ++bias_mismatch;
        }
      }
    }
    EXPECT_EQ(over_bound, 0) << "impl " << (*plain)->impl_name();
    EXPECT_EQ(bias_mismatch, 0);
    EXPECT_LE(sum_sq_err, 1.5 * 1.5 * sum_variance)
        << "rms error " << std::sqrt(sum_sq_err / (m * shape.out)) << " expected "
        << std::sqrt(sum_variance / (m * shape.out));
    std::vector<float> again(m * shape.out, std::nanf(""));
    (*plain)->Forward(x.data(), m, again.data());
    EXPECT_EQ(y, again);
  }
}

// Worst case for the kernels' s16 pair sums: every activation at the top of its range and every
// weight at the top of its range. With 8-bit weights (or 8-bit weights and 8-bit activations)
// on a CPU without VNNI, oneDNN's u8·s8 pair sums would saturate and y would be about half the
// true value.
TEST(LinearTest, Int8ExtremeValuesDoNotSaturate) {
  constexpr int64_t kIn = 960, kOut = 64;
  std::vector<float> w(kOut * kIn);
  for (int64_t o = 0; o < kOut; ++o) {
    for (int64_t k = 0; k < kIn; ++k) w[o * kIn + k] = (o % 2 == 0 ? 1.0f : -1.0f);
  }
  absl::StatusOr<std::unique_ptr<OneDnnLinear>> linear =
      OneDnnLinear::Create(w.data(), kOut, kIn, WeightDType::kInt8);
  ASSERT_TRUE(linear.ok()) << linear.status();
  for (const float sign : {1.0f, -1.0f}) {
    for (const int64_t m : {1, 8, 64}) {
      const std::vector<float> x(m * kIn, sign * 2.0f);
      std::vector<float> y(m * kOut);
      (*linear)->Forward(x.data(), m, y.data());
      for (int64_t i = 0; i < m * kOut; ++i) {
        const float want = sign * 2.0f * kIn * ((i % kOut) % 2 == 0 ? 1.0f : -1.0f);
        ASSERT_NEAR(y[i], want, 1e-4 * kIn) << "m=" << m << " i=" << i;
      }
    }
  }
}

TEST(LinearTest, Int8ZeroRowsGiveBias) {
  const std::vector<float> w(4 * 6, 0.0f);
  const float bias[4] = {0.5f, -1.0f, 2.0f, 0.0f};
  absl::StatusOr<std::unique_ptr<OneDnnLinear>> linear =
      OneDnnLinear::Create(w.data(), 4, 6, WeightDType::kInt8, bias);
  ASSERT_TRUE(linear.ok()) << linear.status();
  const std::vector<float> x = {0, 0, 0, 0, 0, 0, 1, -2, 3, 0, 5, 6};
  std::vector<float> y(8);
  (*linear)->Forward(x.data(), 2, y.data());
  EXPECT_EQ(y, (std::vector<float>{0.5f, -1.0f, 2.0f, 0.0f, 0.5f, -1.0f, 2.0f, 0.0f}));
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearTest,
                         ::testing::Values(Shape{3, 5}, Shape{960, 1600}, Shape{2560, 960}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return "in" + std::to_string(info.param.in) + "_out" +
                                  std::to_string(info.param.out);
                         });

TEST(LinearTest, LargeShapesUseOptimizedKernels) {
  const std::vector<float> w = RandomVector(1600 * 960, 4);
  const std::vector<float> x = RandomVector(300 * 960, 5);
  std::vector<float> y(300 * 1600);
  for (const WeightDType dtype : {WeightDType::kF32, WeightDType::kInt8}) {
    absl::StatusOr<std::unique_ptr<OneDnnLinear>> linear =
        OneDnnLinear::Create(w.data(), 1600, 960, dtype);
    ASSERT_TRUE(linear.ok()) << linear.status();
    for (const int64_t m : {1, 8, 32, 64, 300}) {
      (*linear)->Forward(x.data(), m, y.data());
      EXPECT_EQ((*linear)->impl_name().find("ref"), std::string_view::npos)
          << WeightDTypeName(dtype) << " m=" << m << " impl " << (*linear)->impl_name();
    }
  }
}

// 200 distinct row counts keep at most 64 primitives (issue 13: memory grew with every new step
// size), and a row count that was evicted and comes back gives the same bits as before.
TEST(LinearTest, PrimitiveCacheIsBoundedAndEvictionKeepsResults) {
  const std::vector<float> w = RandomVector(64 * 48, 6);
  const std::vector<float> x = RandomVector(200 * 48, 7);
  absl::StatusOr<std::unique_ptr<OneDnnLinear>> linear =
      OneDnnLinear::Create(w.data(), 64, 48, WeightDType::kF32);
  ASSERT_TRUE(linear.ok()) << linear.status();
  std::vector<float> first(3 * 64), again(3 * 64), y(200 * 64);
  (*linear)->Forward(x.data(), 3, first.data());
  for (int64_t m = 1; m <= 200; ++m) {
    (*linear)->Forward(x.data(), m, y.data());
    ASSERT_LE((*linear)->cached_row_counts(), 64u) << "after m=" << m;
  }
  EXPECT_EQ((*linear)->cached_row_counts(), 64u);
  (*linear)->Forward(x.data(), 3, again.data());  // m=3 was evicted long ago: rebuilt
  EXPECT_EQ(first, again);
}

TEST(LinearTest, RejectsBadArguments) {
  const float w[6] = {};
  EXPECT_EQ(OneDnnLinear::Create(nullptr, 2, 3, WeightDType::kF32).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OneDnnLinear::Create(w, 0, 3, WeightDType::kF32).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OneDnnLinear::Create(w, 2, -1, WeightDType::kF32).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WeightDTypeTest, FloatDefaultIsF32AndNamesParse) {
  EXPECT_EQ(DefaultFloatWeightDType(), WeightDType::kF32);
  for (const char* name : {"auto", "f32", "bf16", "int8", "q8_0", "q4_k"}) {
    absl::StatusOr<WeightDType> d = ParseWeightDType(name);
    ASSERT_TRUE(d.ok()) << name;
    EXPECT_EQ(WeightDTypeName(*d), name);
  }
  EXPECT_EQ(ParseWeightDType("q4_0").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OneDnnLinear::Create(std::vector<float>(6, 1.0f).data(), 2, 3, WeightDType::kQ8_0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WeightDTypeName(WeightDType::kF32), "f32");
  EXPECT_EQ(WeightDTypeName(WeightDType::kBF16), "bf16");
  EXPECT_EQ(WeightDTypeName(WeightDType::kInt8), "int8");
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
