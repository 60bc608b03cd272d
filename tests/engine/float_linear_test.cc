// FloatLinear: every kernel path this CPU has equals the scalar reference bitwise (one fma
// chain per output, in order), a row's result never depends on the other rows of the call,
// f16 storage rounds the weights exactly as IEEE half, and the reference itself agrees with a
// double-precision dot product within the stated f32 bound. Prints which paths ran.
#include "engine/quant/float_linear.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "gtest/gtest.h"

namespace kvserve::engine::quant {
namespace {

std::vector<float> Random(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> Apply(FloatLinear& linear, const std::vector<float>& x, int64_t m) {
  std::vector<float> y(m * linear.out_features(), -1.0f);
  linear.Forward(x.data(), m, y.data());
  return y;
}

struct Shape {
  int64_t n, k;
};

TEST(FloatLinearTest, EveryPathEqualsTheReferenceBitwiseAndRowsAreIndependent) {
  const std::vector<Shape> shapes = {{16, 64}, {40, 96}, {129, 257}, {7, 1000}};
  const std::vector<int64_t> row_counts = {1, 2, 3, 4, 5, 8, 17, 33};
  std::vector<QuantIsa> ran;
  for (QuantIsa isa : AvailableQuantIsas()) {
    for (FloatStorage storage : {FloatStorage::kF32, FloatStorage::kF16}) {
      for (const Shape& s : shapes) {
        const std::vector<float> w = Random(s.n * s.k, 1), bias = Random(s.n, 2);
        const std::vector<float> x = Random(33 * s.k, 3);
        auto linear = FloatLinear::Create(w.data(), s.n, s.k, storage, isa, bias.data());
        ASSERT_TRUE(linear.ok()) << linear.status();
        auto ref = FloatLinear::Create(w.data(), s.n, s.k, storage, QuantIsa::kScalar,
                                       bias.data());
        ASSERT_TRUE(ref.ok());
        const std::vector<float> want = Apply(**ref, x, 33);
        for (int64_t m : row_counts) {
          const std::vector<float> got = Apply(**linear, x, m);
          // Row r of an m-row call equals row r of the 33-row reference call.
          ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << QuantIsaName(isa) << " " << FloatStorageName(storage) << " n=" << s.n
              << " k=" << s.k << " m=" << m;
        }
      }
    }
    ran.push_back(isa);
  }
  for (QuantIsa isa : ran) std::printf("float path %s ran\n", std::string(QuantIsaName(isa)).c_str());
  for (QuantIsa isa : {QuantIsa::kAvx2, QuantIsa::kAvx512}) {
    if (!QuantIsaSupported(isa, CpuFeatures())) {
      std::printf("float path %s NOT RUN: this CPU lacks it\n",
                  std::string(QuantIsaName(isa)).c_str());
    }
  }
}

// The reference against an independent computation: the same weights (f16-rounded through
// the engine's IEEE conversion for kF16) in double precision. A sequential f32 fma chain of
// length k is within k * 2^-24 * sum |w x| of the exact dot product.
TEST(FloatLinearTest, ReferenceIsADotProductWithinTheF32Bound) {
  const int64_t n = 24, k = 512;
  const std::vector<float> w = Random(n * k, 5), x = Random(k, 6);
  for (FloatStorage storage : {FloatStorage::kF32, FloatStorage::kF16}) {
    auto linear = FloatLinear::Create(w.data(), n, k, storage, DefaultQuantIsa(), nullptr);
    ASSERT_TRUE(linear.ok());
    const std::vector<float> y = Apply(**linear, x, 1);
    for (int64_t r = 0; r < n; ++r) {
      double exact = 0, mag = 0;
      for (int64_t j = 0; j < k; ++j) {
        const float wj = storage == FloatStorage::kF16 ? HalfToFloat(FloatToHalf(w[r * k + j]))
                                                       : w[r * k + j];
        exact += static_cast<double>(wj) * x[j];
        mag += std::fabs(static_cast<double>(wj) * x[j]);
      }
      EXPECT_NEAR(y[r], exact, k * std::ldexp(1.0, -24) * mag) << r;
      if (storage == FloatStorage::kF16) {
        // f16 storage really rounds: the f32-weight result differs somewhere.
        double exact32 = 0;
        for (int64_t j = 0; j < k; ++j) exact32 += static_cast<double>(w[r * k + j]) * x[j];
        EXPECT_NE(exact, exact32);
      }
    }
  }
}

TEST(FloatLinearTest, RejectsEmptyWeights) {
  float w = 1;
  EXPECT_FALSE(
      FloatLinear::Create(&w, 0, 1, FloatStorage::kF32, QuantIsa::kScalar, nullptr).ok());
}

}  // namespace
}  // namespace kvserve::engine::quant
