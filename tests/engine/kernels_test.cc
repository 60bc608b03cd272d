// Kernels against naive double-precision loops written here, on every ISA the CPU can run.
#include "engine/kernels.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/simd_internal.h"
#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

using internal::Isa;

std::vector<float> RandomVector(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// |got - want| <= rel * |want| + abs.
void ExpectClose(const std::vector<float>& got, const std::vector<double>& want, double rel,
                 double abs, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(got[i] - want[i]), rel * std::fabs(want[i]) + abs)
        << what << " at " << i << ": got " << got[i] << " want " << want[i];
  }
}

// Dimensions around the vector widths (8, 16), including ragged tails.
const int64_t kDims[] = {1, 3, 7, 8, 15, 16, 17, 33, 100, 4099};

class KernelsTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { ASSERT_TRUE(internal::SetIsaForTesting(GetParam())); }
  void TearDown() override { internal::ResetIsaForTesting(); }
};

TEST_P(KernelsTest, RmsNormMatchesDoubleReference) {
  for (int64_t dim : kDims) {
    const int64_t rows = 5;
    const float eps = 1e-5f;
    std::vector<float> x = RandomVector(rows * dim, -3.f, 3.f, 1 + dim);
    const std::vector<float> w = RandomVector(dim, 0.5f, 1.5f, 2 + dim);
    std::vector<double> want(rows * dim);
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < dim; ++c) ss += double{x[r * dim + c]} * x[r * dim + c];
      const double inv = 1.0 / std::sqrt(ss / dim + eps);
      for (int64_t c = 0; c < dim; ++c) want[r * dim + c] = x[r * dim + c] * inv * w[c];
    }
    std::vector<float> out(rows * dim);
    RmsNorm(x.data(), w.data(), out.data(), rows, dim, eps);
    ExpectClose(out, want, 1e-5, 1e-30, "RmsNorm");
    RmsNorm(x.data(), w.data(), x.data(), rows, dim, eps);  // in place
    ExpectClose(x, want, 1e-5, 1e-30, "RmsNorm in place");
  }
}

TEST_P(KernelsTest, RmsNormManyRowsUsesParallelPathCorrectly) {
  const int64_t rows = 64, dim = 2048;
  const std::vector<float> x = RandomVector(rows * dim, -1.f, 1.f, 7);
  const std::vector<float> w = RandomVector(dim, -2.f, 2.f, 8);
  std::vector<double> want(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < dim; ++c) ss += double{x[r * dim + c]} * x[r * dim + c];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
    for (int64_t c = 0; c < dim; ++c) want[r * dim + c] = x[r * dim + c] * inv * w[c];
  }
  std::vector<float> out(rows * dim);
  RmsNorm(x.data(), w.data(), out.data(), rows, dim, 1e-6f);
  ExpectClose(out, want, 1e-5, 1e-30, "RmsNorm");
}

TEST_P(KernelsTest, AddInPlaceIsExactFloatAddition) {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{15}, int64_t{17}, int64_t{300007}}) {
    std::vector<float> x = RandomVector(n, -10.f, 10.f, 3);
    const std::vector<float> y = RandomVector(n, -10.f, 10.f, 4);
    std::vector<float> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = x[i] + y[i];
    AddInPlace(x.data(), y.data(), n);
    EXPECT_EQ(x, want) << "n=" << n;
  }
}

TEST_P(KernelsTest, AddBiasAddsToEveryRow) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 33}, {1, 7}, {300, 1031}}) {
    std::vector<float> x = RandomVector(rows * cols, -1.f, 1.f, 5);
    const std::vector<float> bias = RandomVector(cols, -1.f, 1.f, 6);
    std::vector<float> want(x.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) want[r * cols + c] = x[r * cols + c] + bias[c];
    AddBias(x.data(), bias.data(), rows, cols);
    EXPECT_EQ(x, want) << rows << "x" << cols;
  }
}

TEST_P(KernelsTest, SwiGluMatchesDoubleReference) {
  for (int64_t inter : kDims) {
    const int64_t rows = 3;
    std::vector<float> gate_up = RandomVector(rows * 2 * inter, -20.f, 20.f, 9 + inter);
    // Edge values in the gate halves.
    const float edges[] = {0.f, -0.f, 1e-30f, -1e-30f, 88.f, -88.f, 100.f, -100.f, -15.f};
    for (int i = 0; i < 9 && i < inter; ++i) gate_up[i] = edges[i];
    std::vector<double> want(rows * inter);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < inter; ++c) {
        const double g = gate_up[r * 2 * inter + c], u = gate_up[r * 2 * inter + inter + c];
        want[r * inter + c] = g / (1.0 + std::exp(-g)) * u;
      }
    }
    std::vector<float> out(rows * inter);
    SwiGlu(gate_up.data(), out.data(), rows, inter);
    // Absolute floor: silu(g) for g < -87 is below 1e-35 and exp() flushes it to 0.
    ExpectClose(out, want, 1e-5, 1e-32, "SwiGlu");
  }
}

TEST_P(KernelsTest, VectorExpRelativeErrorBelowOneMillionth) {
  const int64_t n = 1 << 20;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = -87.3f * static_cast<float>(i) / (n - 1);
  internal::VectorExpForTesting(x.data(), y.data(), n);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    worst = std::max(worst, std::fabs(y[i] - want) / want);
  }
  EXPECT_LT(worst, 1e-6);
  const float special[] = {0.f, -1e-8f, -88.f, -200.f, -std::numeric_limits<float>::infinity()};
  float out[5];
  internal::VectorExpForTesting(special, out, 5);
  EXPECT_EQ(out[0], 1.f);
  EXPECT_NEAR(out[1], 1.f, 1e-7f);
  EXPECT_EQ(out[2], 0.f);  // below the normal range: flushed
  EXPECT_EQ(out[3], 0.f);
  EXPECT_EQ(out[4], 0.f);
}

TEST_P(KernelsTest, SoftmaxRowsMatchesDoubleReference) {
  for (int64_t cols : kDims) {
    const int64_t rows = 4;
    std::vector<float> x = RandomVector(rows * cols, -10.f, 10.f, 11 + cols);
    for (int64_t c = 0; c < cols; ++c) x[cols + c] += 1000.f;  // stability: large offset
    if (cols > 2) x[2 * cols + 1] = -std::numeric_limits<float>::infinity();  // masked entry
    std::vector<double> want(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, double{x[r * cols + c]});
      for (int64_t c = 0; c < cols; ++c) sum += std::exp(x[r * cols + c] - mx);
      for (int64_t c = 0; c < cols; ++c) want[r * cols + c] = std::exp(x[r * cols + c] - mx) / sum;
    }
    SoftmaxRows(x.data(), rows, cols);
    ExpectClose(x, want, 1e-5, 1e-30, "SoftmaxRows");
  }
}

// Hand-derived: head_dim 4, base 10000 -> inv_freq = {1, 10000^(-1/2) = 0.01}.
constexpr double kCos1 = 0.5403023058681398, kSin1 = 0.8414709848078965;
constexpr double kCos001 = 0.9999500004166653, kSin001 = 0.009999833334166664;
constexpr double kCos3 = -0.9899924966004454, kSin3 = 0.1411200080598672;
constexpr double kCos003 = 0.9995500337489875, kSin003 = 0.02999550020249566;

// Rotates (a, b) by the angle with the given cosine and sine.
void Rotate(double a, double b, double c, double s, double* out_a, double* out_b) {
  *out_a = a * c - b * s;
  *out_b = a * s + b * c;
}

TEST_P(KernelsTest, RopeTinyHeadMatchesHandComputedRotation) {
  const RopeTable table(4, 10000.f);
  ASSERT_EQ(table.inv_freq.size(), 2u);
  EXPECT_FLOAT_EQ(table.inv_freq[0], 1.f);
  EXPECT_FLOAT_EQ(table.inv_freq[1], 0.01f);
  // Two rows (positions 1 and 3), two heads each.
  const std::vector<float> input = {1, 2, 3, 4, 0.5f, -1, 2, -3, 1, 2, 3, 4, -2, 0.25f, 1, 5};
  const int32_t positions[] = {1, 3};
  const double cos_sin[2][4] = {{kCos1, kSin1, kCos001, kSin001}, {kCos3, kSin3, kCos003, kSin003}};

  for (RopeStyle style : {RopeStyle::kAdjacentPairs, RopeStyle::kHalves}) {
    std::vector<double> want(16);
    for (int r = 0; r < 2; ++r) {
      for (int h = 0; h < 2; ++h) {
        const float* x = &input[r * 8 + h * 4];
        double* y = &want[r * 8 + h * 4];
        const double* cs = cos_sin[r];
        if (style == RopeStyle::kAdjacentPairs) {  // pairs (0,1) and (2,3)
          Rotate(x[0], x[1], cs[0], cs[1], &y[0], &y[1]);
          Rotate(x[2], x[3], cs[2], cs[3], &y[2], &y[3]);
        } else {  // pairs (0,2) and (1,3)
          Rotate(x[0], x[2], cs[0], cs[1], &y[0], &y[2]);
          Rotate(x[1], x[3], cs[2], cs[3], &y[1], &y[3]);
        }
      }
    }
    std::vector<float> x = input;
    ApplyRope(x.data(), 2, 2, positions, table, style);
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(x[i], want[i], 1e-6) << "element " << i;
  }
}

TEST_P(KernelsTest, RopeLargeHeadAndPositionsMatchDoubleReference) {
  const int head_dim = 128, heads = 3, half = head_dim / 2;
  const float base = 500000.f;
  const RopeTable table(head_dim, base);
  // Includes positions beyond the cached range.
  const std::vector<int32_t> positions = {0, 1, 17, 4095, 4096, 5000, 131071};
  const int64_t rows = positions.size();
  const std::vector<float> input = RandomVector(rows * heads * head_dim, -2.f, 2.f, 21);
  for (RopeStyle style : {RopeStyle::kAdjacentPairs, RopeStyle::kHalves}) {
    std::vector<float> x = input;
    ApplyRope(x.data(), rows, heads, positions.data(), table, style);
    for (int64_t r = 0; r < rows; ++r) {
      for (int h = 0; h < heads; ++h) {
        const float* in = &input[(r * heads + h) * head_dim];
        const float* got = &x[(r * heads + h) * head_dim];
        for (int i = 0; i < half; ++i) {
          // Declared semantics: f32 inverse frequency, angle in double.
          const float inv_freq = static_cast<float>(std::pow(double{base}, -2.0 * i / head_dim));
          const double angle = static_cast<double>(positions[r]) * inv_freq;
          const int a = style == RopeStyle::kAdjacentPairs ? 2 * i : i;
          const int b = style == RopeStyle::kAdjacentPairs ? 2 * i + 1 : i + half;
          double want_a, want_b;
          Rotate(in[a], in[b], std::cos(angle), std::sin(angle), &want_a, &want_b);
          const double scale = std::fabs(in[a]) + std::fabs(in[b]);
          ASSERT_NEAR(got[a], want_a, 1e-5 * scale) << "pos " << positions[r] << " i " << i;
          ASSERT_NEAR(got[b], want_b, 1e-5 * scale) << "pos " << positions[r] << " i " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KernelsTest, ::testing::ValuesIn(internal::AvailableIsas()),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(internal::IsaName(info.param));
                         });

// Every vector path against the scalar fallback, on the same inputs.
TEST(KernelsIsaTest, VectorPathsAgreeWithScalarFallback) {
  const int64_t rows = 7, dim = 1000 + 13;
  const std::vector<float> x = RandomVector(rows * dim, -5.f, 5.f, 31);
  const std::vector<float> w = RandomVector(dim, -1.f, 1.f, 32);
  const std::vector<float> gate_up = RandomVector(rows * dim, -12.f, 12.f, 33);
  auto run = [&](Isa isa) {
    EXPECT_TRUE(internal::SetIsaForTesting(isa));
    std::vector<float> results(rows * dim);
    RmsNorm(x.data(), w.data(), results.data(), rows, dim, 1e-5f);
    std::vector<float> soft = x;
    SoftmaxRows(soft.data(), rows, dim);
    std::vector<float> glu(rows * dim / 2);
    SwiGlu(gate_up.data(), glu.data(), rows, dim / 2);
    results.insert(results.end(), soft.begin(), soft.end());
    results.insert(results.end(), glu.begin(), glu.end());
    internal::ResetIsaForTesting();
    return results;
  };
  const std::vector<float> scalar = run(Isa::kScalar);
  for (Isa isa : internal::AvailableIsas()) {
    const std::vector<float> vec = run(isa);
    for (size_t i = 0; i < scalar.size(); ++i) {
      ASSERT_NEAR(vec[i], scalar[i], 2e-6 * std::fabs(scalar[i]) + 1e-30)
          << internal::IsaName(isa) << " element " << i;
    }
  }
}

TEST(KernelsIsaTest, SelectIsaHonoursCpuAndSwitches) {
  CpuFeatureSet cpu;
  EXPECT_EQ(internal::SelectIsa(cpu, false, false), Isa::kScalar);
  cpu.avx2 = cpu.fma = true;
  EXPECT_EQ(internal::SelectIsa(cpu, false, false), Isa::kScalar);  // the kernels need F16C
  cpu.f16c = true;
  EXPECT_EQ(internal::SelectIsa(cpu, false, false), Isa::kAvx2);
  cpu.avx512f = cpu.avx512bw = cpu.avx512vl = true;
  EXPECT_EQ(internal::SelectIsa(cpu, false, false), Isa::kAvx512);
  EXPECT_EQ(internal::SelectIsa(cpu, true, false), Isa::kAvx2);
  EXPECT_EQ(internal::SelectIsa(cpu, false, true), Isa::kScalar);
  cpu.avx512bw = false;  // F alone (Knights Landing) is not enough
  EXPECT_EQ(internal::SelectIsa(cpu, false, false), Isa::kAvx2);
}

}  // namespace
}  // namespace kvserve::engine
