// Batch invariance of the whole forward pass: the logits of one sequence's step are bitwise
// equal whether it runs alone or with 1 to 63 other sequences in the step, for float weights
// (the default f32 path) and every quantized type, on every kernel path this CPU has. Prints
// which paths ran.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/kv_page_pool.h"
#include "engine/llama_model.h"
#include "engine/quant/formats.h"
#include "engine/quant/isa.h"
#include "gtest/gtest.h"
#include "tests/engine/synthetic_model.h"

namespace kvserve::engine {
namespace {

constexpr int kPage = 16;
constexpr int kContext = 24;  // positions of each sequence: a prompt, then the step under test

struct Fixture {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<KvPagePool> pool;
};

Fixture Load(GgmlType type, quant::QuantIsa isa, KvDType kv_dtype = KvDType::kF32) {
  testing::SyntheticSpec spec;
  spec.hidden = 256;
  spec.ffn = 512;
  spec.heads = 4;
  spec.kv_heads = 2;
  spec.vocab = 256;
  spec.weight_type = type;
  spec.seed = 3;
  auto file = GgufFile::Open(testing::WriteSyntheticModel(spec));
  EXPECT_TRUE(file.ok()) << file.status();
  LoadOptions options;
  options.isa = isa;
  auto model = LlamaModel::Load(std::shared_ptr<const GgufFile>(std::move(*file)), options);
  EXPECT_TRUE(model.ok()) << model.status();
  Fixture f;
  f.model = std::move(*model);
  auto pool = KvPagePool::Create(f.model->KvShape(kPage, 64 * 4, kv_dtype));
  EXPECT_TRUE(pool.ok());
  f.pool = std::move(*pool);
  return f;
}

// Sequence s: tokens, and its own two pages.
std::vector<int32_t> Tokens(int s) {
  std::vector<int32_t> t(kContext);
  for (int i = 0; i < kContext; ++i) t[i] = (i * 37 + s * 11 + 5) % 256;
  return t;
}

// Prefills sequences [0, n) (positions 0..kContext-2), then runs one decode step of all n and
// returns sequence 0's logits of that step. Every call writes the same K/V for the same
// sequence, so earlier calls cannot leak into later ones.
std::vector<float> DecodeStep(Fixture& f, int n) {
  std::vector<std::vector<int32_t>> tokens(n), tables(n);
  for (int s = 0; s < n; ++s) {
    tokens[s] = Tokens(s);
    tables[s] = {2 * s, 2 * s + 1};
  }
  ForwardBatch prefill;
  for (int s = 0; s < n; ++s) {
    prefill.runs.push_back(ForwardRun{absl::MakeConstSpan(tokens[s].data(), kContext - 1), 0,
                                      tables[s], LogitsMode::kNone});
  }
  std::vector<float> logits;
  EXPECT_TRUE(f.model->Forward(prefill, *f.pool, &logits).ok());
  ForwardBatch step;
  for (int s = 0; s < n; ++s) {
    step.runs.push_back(ForwardRun{absl::MakeConstSpan(tokens[s].data() + kContext - 1, 1),
                                   kContext - 1, tables[s], LogitsMode::kLast});
  }
  EXPECT_TRUE(f.model->Forward(step, *f.pool, &logits).ok());
  logits.resize(f.model->config().vocab_size);
  return logits;
}

// Like DecodeStep, but sequence s > 0 has its own context length (1 to 60 positions, four
// pages each), so the step mixes very different attention lengths around sequence 0.
std::vector<float> DecodeStepMixed(Fixture& f, int n) {
  std::vector<std::vector<int32_t>> tokens(n), tables(n);
  ForwardBatch prefill, step;
  for (int s = 0; s < n; ++s) {
    const int context = s == 0 ? kContext : 1 + (s * 13) % 60;
    tokens[s].resize(context);
    for (int i = 0; i < context; ++i) tokens[s][i] = (i * 37 + s * 11 + 5) % 256;
    tables[s] = {4 * s, 4 * s + 1, 4 * s + 2, 4 * s + 3};
  }
  for (int s = 0; s < n; ++s) {
    const int context = static_cast<int>(tokens[s].size());
    if (context > 1) {
      prefill.runs.push_back(ForwardRun{absl::MakeConstSpan(tokens[s].data(), context - 1), 0,
                                        tables[s], LogitsMode::kNone});
    }
    step.runs.push_back(ForwardRun{absl::MakeConstSpan(tokens[s].data() + context - 1, 1),
                                   context - 1, tables[s], LogitsMode::kLast});
  }
  std::vector<float> logits;
  EXPECT_TRUE(f.model->Forward(prefill, *f.pool, &logits).ok());
  EXPECT_TRUE(f.model->Forward(step, *f.pool, &logits).ok());
  logits.resize(f.model->config().vocab_size);
  return logits;
}

// Every KV cache dtype, on the default kernel path: a sequence's decode logits alone and among
// up to 32 others with mixed context lengths are bitwise equal (f16 and Q4_K weights).
TEST(BatchInvarianceTest, EveryKvDTypeWithMixedContextLengths) {
  const quant::QuantIsa isa = quant::AvailableQuantIsas().back();
  for (KvDType kv : {KvDType::kF32, KvDType::kBF16, KvDType::kF16, KvDType::kQ8_0}) {
    for (GgmlType type : {GgmlType::kF16, GgmlType::kQ4_K}) {
      Fixture f = Load(type, isa, kv);
      ASSERT_NE(f.model, nullptr);
      const std::vector<float> alone = DecodeStepMixed(f, 1);
      for (int n : {2, 9, 33}) {
        const std::vector<float> batched = DecodeStepMixed(f, n);
        ASSERT_EQ(std::memcmp(alone.data(), batched.data(), alone.size() * sizeof(float)), 0)
            << "KV " << KvDTypeName(kv) << ", " << GgmlTypeName(type) << " weights, batch of " << n;
      }
    }
    std::printf("batch invariance holds with KV dtype %s (path %s)\n", KvDTypeName(kv),
                std::string(quant::QuantIsaName(isa)).c_str());
  }
}

TEST(BatchInvarianceTest, AloneAndInBatchesOf2To64AreBitwiseEqual) {
  std::vector<GgmlType> types = {GgmlType::kF32, GgmlType::kF16};
  for (const quant::FormatInfo& f : quant::kFormats) types.push_back(f.type);
  for (quant::QuantIsa isa : quant::AvailableQuantIsas()) {
    const auto start = std::chrono::steady_clock::now();
    for (GgmlType type : types) {
      if ((type == GgmlType::kF32 || type == GgmlType::kF16) && isa == quant::QuantIsa::kScalar) {
        continue;  // the float reference is covered by float_linear_test; slow here
      }
      Fixture f = Load(type, isa);
      ASSERT_NE(f.model, nullptr);
      const std::vector<float> alone = DecodeStep(f, 1);
      // The scalar reference is slow: fewer batch sizes there.
      const std::vector<int> sizes = isa == quant::QuantIsa::kScalar
                                         ? std::vector<int>{2, 17}
                                         : std::vector<int>{2, 3, 5, 16, 17, 33, 64};
      for (int n : sizes) {
        const std::vector<float> batched = DecodeStep(f, n);
        ASSERT_EQ(std::memcmp(alone.data(), batched.data(), alone.size() * sizeof(float)), 0)
            << GgmlTypeName(type) << " on " << quant::QuantIsaName(isa) << ", batch of " << n;
      }
    }
    std::printf("batch invariance holds on path %s (%.1f s)\n",
                std::string(quant::QuantIsaName(isa)).c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  for (quant::QuantIsa isa : {quant::QuantIsa::kAvx2, quant::QuantIsa::kAvxVnni,
                              quant::QuantIsa::kAvx512, quant::QuantIsa::kAmx}) {
    if (!quant::QuantIsaSupported(isa, CpuFeatures())) {
      std::printf("path %s NOT RUN: this CPU lacks it\n",
                  std::string(quant::QuantIsaName(isa)).c_str());
    }
  }
}

}  // namespace
}  // namespace kvserve::engine
