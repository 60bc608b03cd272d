// The quantized matmul: every kernel path this CPU has equals the scalar reference bit for
// bit, for every format, odd shapes and batch sizes; a row's outputs do not depend on the other
// rows of the batch; activation quantization is the same on every path. The output names the
// paths that ran and those this machine cannot run.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/quant/activations.h"
#include "engine/quant/isa.h"
#include "engine/quant/quant_matmul.h"
#include "engine/quant/reference.h"
#include "gtest/gtest.h"
#include "engine/quant/random_blocks.h"

namespace kvserve::engine::quant {
namespace {

constexpr QuantIsa kAllIsas[] = {QuantIsa::kScalar, QuantIsa::kAvx2, QuantIsa::kAvxVnni,
                                 QuantIsa::kAvx512, QuantIsa::kAmx};

std::vector<float> RandomActivations(int64_t m, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(m * k);
  for (float& v : x) v = normal(rng);
  return x;
}

std::vector<float> Multiply(const QuantMatrix& w, const QuantizedRows& a) {
  std::vector<float> y(a.rows * w.n(), -1.0f);
  w.Multiply(a, 0, w.units(), y.data(), w.n());
  return y;
}

TEST(QuantKernelsTest, ReportsThePathsThisMachineHas) {
  for (QuantIsa isa : kAllIsas) {
    const bool has = QuantIsaSupported(isa, CpuFeatures());
    std::printf("quant path %-8s %s\n", std::string(QuantIsaName(isa)).c_str(),
                has ? "runs here" : "NOT RUN: this CPU lacks it");
  }
  std::printf("default path: %s\n", std::string(QuantIsaName(DefaultQuantIsa())).c_str());
  EXPECT_TRUE(QuantIsaSupported(QuantIsa::kScalar, CpuFeatures()));
}

TEST(QuantKernelsTest, EveryPathEqualsTheReferenceBitForBit) {
  std::mt19937 rng(1234);
  struct Shape {
    int64_t n, blocks, m;
  };
  const Shape shapes[] = {{1, 1, 1}, {16, 1, 3}, {37, 2, 5}, {50, 3, 17}, {33, 4, 70}};
  for (const FormatInfo& f : kFormats) {
    for (const Shape& s : shapes) {
      const int64_t k = s.blocks * f.block_k;
      const std::vector<uint8_t> rows = RandomRows(f, s.n, k, rng);
      const std::vector<float> x = RandomActivations(s.m, k, rng);
      QuantizedRows a;
      Quantize(f.act, x.data(), s.m, k, QuantIsa::kScalar, &a);
      std::vector<float> want(s.m * s.n);
      ReferenceMatmul(f, rows.data(), k, 0, s.n, a, want.data(), s.n);
      for (QuantIsa isa : AvailableQuantIsas()) {
        absl::StatusOr<QuantMatrix> w = QuantMatrix::Create(f, rows.data(), s.n, k, isa);
        ASSERT_TRUE(w.ok()) << w.status();
        const std::vector<float> got = Multiply(*w, a);
        for (int64_t i = 0; i < s.m * s.n; ++i) {
          ASSERT_EQ(std::memcmp(&got[i], &want[i], 4), 0)
              << GgmlTypeName(f.type) << " " << QuantIsaName(isa) << " n=" << s.n << " k=" << k
              << " m=" << s.m << " output " << i << ": " << got[i] << " vs " << want[i];
        }
      }
    }
  }
}

// A row alone and inside batches of 2 to 64 rows gives the same bits, on every path.
TEST(QuantKernelsTest, BatchInvariance) {
  std::mt19937 rng(99);
  for (const FormatInfo& f : kFormats) {
    const int64_t n = 40, k = 2 * f.block_k;
    const std::vector<uint8_t> rows = RandomRows(f, n, k, rng);
    const std::vector<float> x = RandomActivations(64, k, rng);
    for (QuantIsa isa : AvailableQuantIsas()) {
      absl::StatusOr<QuantMatrix> w = QuantMatrix::Create(f, rows.data(), n, k, isa);
      ASSERT_TRUE(w.ok()) << w.status();
      QuantizedRows alone;
      Quantize(f.act, x.data() + 5 * k, 1, k, isa, &alone);
      const std::vector<float> solo = Multiply(*w, alone);
      for (int64_t batch : {2, 3, 4, 5, 8, 16, 33, 64}) {
        QuantizedRows a;
        Quantize(f.act, x.data(), batch, k, isa, &a);
        const std::vector<float> got = Multiply(*w, a);
        const int64_t row = std::min<int64_t>(5, batch - 1);
        if (row != 5) continue;  // the row must be in the batch
        ASSERT_EQ(std::memcmp(got.data() + row * n, solo.data(), n * 4), 0)
            << GgmlTypeName(f.type) << " " << QuantIsaName(isa) << " batch " << batch;
      }
    }
  }
}

// The activation quantizers of every path write the same bytes.
TEST(QuantKernelsTest, ActivationQuantizationIsTheSameOnEveryPath) {
  std::mt19937 rng(7);
  std::vector<std::vector<float>> inputs;
  inputs.push_back(RandomActivations(3, 512, rng));
  inputs.push_back(std::vector<float>(512, 0.0f));
  std::vector<float> ties(512);
  for (int i = 0; i < 512; ++i) ties[i] = (i % 7 - 3) * 0.5f;  // x * 127 / amax lands on .5
  inputs.push_back(ties);
  std::vector<float> one(512, 0.0f);
  one[300] = -3.0f;
  one[301] = 3.0f;  // equal magnitude after the first: Q8_K keeps the first (negative)
  inputs.push_back(one);
  for (const std::vector<float>& x : inputs) {
    const int64_t rows = static_cast<int64_t>(x.size()) / 512;
    for (ActKind kind : {ActKind::kQ8_0, ActKind::kQ8_1, ActKind::kQ8_K}) {
      QuantizedRows want;
      Quantize(kind, x.data(), rows, 512, QuantIsa::kScalar, &want);
      for (QuantIsa isa : AvailableQuantIsas()) {
        QuantizedRows got;
        Quantize(kind, x.data(), rows, 512, isa, &got);
        for (int64_t r = 0; r < rows; ++r) {
          EXPECT_EQ(ToGgmlBlocks(got, r), ToGgmlBlocks(want, r))
              << ActKindName(kind) << " " << QuantIsaName(isa);
        }
      }
    }
  }
  QuantizedRows q8k;
  Quantize(ActKind::kQ8_K, one.data(), 1, 512, QuantIsa::kScalar, &q8k);
  // max = -3 (the first of largest magnitude), iscale = -127 / max = 127 / 3: the negative
  // value maps to -127 and d = 1 / iscale is positive; taking +3 would flip both signs.
  EXPECT_EQ(q8k.qs[300], -127);
  EXPECT_EQ(q8k.qs[301], 127);
  EXPECT_FLOAT_EQ(q8k.d[1], 3.0f / 127.0f);
}

}  // namespace
}  // namespace kvserve::engine::quant
