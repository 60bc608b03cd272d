// LlamaModel: batching must not change the numbers, and malformed models must give named errors.
#include "engine/llama_model.h"

#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/synthetic_model.h"

namespace kvserve::engine {
namespace {

using testing::SyntheticSpec;
using testing::WriteSyntheticModel;

std::unique_ptr<LlamaModel> LoadOrDie(const SyntheticSpec& spec) {
  auto file = GgufFile::Open(WriteSyntheticModel(spec));
  EXPECT_TRUE(file.ok()) << file.status();
  auto model = LlamaModel::Load(std::shared_ptr<const GgufFile>(std::move(*file)), LoadOptions{});
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

absl::Status LoadStatus(const SyntheticSpec& spec) {
  auto file = GgufFile::Open(WriteSyntheticModel(spec));
  if (!file.ok()) return file.status();
  return LlamaModel::Load(std::shared_ptr<const GgufFile>(std::move(*file)), LoadOptions{})
      .status();
}

std::vector<int32_t> Tokens(int n, int salt, int vocab) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 31 + salt * 17 + 3) % vocab;
  return t;
}

double MaxRelDiff(const float* a, const float* b, int64_t n) {
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::abs(double(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::abs(double(b[i])));
  }
  return max_diff / max_ref;
}

class LlamaModelBatchTest : public ::testing::TestWithParam<std::string> {};

// Eight sequences of different lengths in one batch give each sequence's logits as computed
// alone (different pages, the same positions).
TEST_P(LlamaModelBatchTest, BatchOfEightEqualsEachAlone) {
  SyntheticSpec spec;
  spec.architecture = GetParam();
  auto model = LoadOrDie(spec);
  const int vocab = static_cast<int>(model->config().vocab_size);
  const int page = 4;
  auto pool = KvPagePool::Create(model->KvShape(page, 256, KvDType::kF32));
  ASSERT_TRUE(pool.ok());
  const std::vector<int> lengths = {1, 2, 5, 9, 16, 17, 33, 70};
  std::vector<std::vector<int32_t>> prompts, tables;
  int next_page = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    prompts.push_back(Tokens(lengths[s], static_cast<int>(s), vocab));
    std::vector<int32_t> table((lengths[s] + page - 1) / page);
    // Interleave pages of different sequences so page tables are not contiguous.
    for (size_t i = 0; i < table.size(); ++i) table[i] = 255 - next_page++;
    tables.push_back(table);
  }
  ForwardBatch batch;
  for (size_t s = 0; s < lengths.size(); ++s) {
    batch.runs.push_back(ForwardRun{prompts[s], 0, tables[s], LogitsMode::kAll});
  }
  std::vector<float> batched;
  ASSERT_TRUE(model->Forward(batch, **pool, &batched).ok());
  int64_t row = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    ForwardBatch alone;
    alone.runs.push_back(ForwardRun{prompts[s], 0, tables[s], LogitsMode::kAll});
    std::vector<float> single;
    ASSERT_TRUE(model->Forward(alone, **pool, &single).ok());
    ASSERT_EQ(single.size(), lengths[s] * static_cast<size_t>(vocab));
    EXPECT_LT(MaxRelDiff(batched.data() + row * vocab, single.data(), single.size()), 1e-5)
        << "sequence " << s;
    row += lengths[s];
  }
  EXPECT_EQ(row * vocab, static_cast<int64_t>(batched.size()));
}

// Prefill in chunks, then decode one token at a time: the same logits as one whole prefill.
TEST_P(LlamaModelBatchTest, ChunkedPrefillAndDecodeEqualWholePrefill) {
  SyntheticSpec spec;
  spec.architecture = GetParam();
  auto model = LoadOrDie(spec);
  const int vocab = static_cast<int>(model->config().vocab_size);
  auto pool = KvPagePool::Create(model->KvShape(16, 8, KvDType::kF32));
  ASSERT_TRUE(pool.ok());
  const std::vector<int32_t> prompt = Tokens(40, 7, vocab);
  const std::vector<int32_t> table_a = {0, 1, 2}, table_b = {5, 3, 7};
  std::vector<float> whole;
  ForwardBatch b;
  b.runs.push_back(ForwardRun{prompt, 0, table_a, LogitsMode::kAll});
  ASSERT_TRUE(model->Forward(b, **pool, &whole).ok());
  // Chunks of 13, 13 and one token at a time.
  int pos = 0;
  std::vector<float> logits;
  for (int chunk : {13, 13, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}) {
    absl::Span<const int32_t> part = absl::MakeConstSpan(prompt).subspan(pos, chunk);
    ForwardBatch c;
    c.runs.push_back(ForwardRun{part, pos, table_b, LogitsMode::kLast});
    ASSERT_TRUE(model->Forward(c, **pool, &logits).ok());
    pos += chunk;
    EXPECT_LT(MaxRelDiff(logits.data(), whole.data() + (pos - 1) * vocab, vocab), 1e-5)
        << "after position " << pos - 1;
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, LlamaModelBatchTest, ::testing::Values("llama", "qwen2"));

TEST(LlamaModelTest, TiedEmbeddingsLoadWithoutOutputWeight) {
  SyntheticSpec spec;
  spec.tied = true;
  auto model = LoadOrDie(spec);
  EXPECT_TRUE(model->config().tied_embeddings);
}

TEST(LlamaModelTest, RejectsBadBatches) {
  auto model = LoadOrDie(SyntheticSpec{});
  auto pool = KvPagePool::Create(model->KvShape(16, 4, KvDType::kF32));
  ASSERT_TRUE(pool.ok());
  std::vector<float> logits;
  const std::vector<int32_t> bad_token = {1, 256}, ok_tokens(20, 1), table = {0};
  ForwardBatch b1;
  b1.runs.push_back(ForwardRun{bad_token, 0, table, LogitsMode::kLast});
  EXPECT_EQ(model->Forward(b1, **pool, &logits).message(),
            "token id 256 is outside the vocabulary [0, 256)");
  ForwardBatch b2;
  b2.runs.push_back(ForwardRun{ok_tokens, 0, table, LogitsMode::kLast});  // needs 2 pages
  EXPECT_NE(model->Forward(b2, **pool, &logits).message().find("page table has 1"),
            std::string::npos);
  const std::vector<int32_t> bad_table = {9, 0};
  ForwardBatch b3;
  b3.runs.push_back(ForwardRun{ok_tokens, 0, bad_table, LogitsMode::kLast});
  EXPECT_NE(model->Forward(b3, **pool, &logits).message().find("outside the pool"),
            std::string::npos);
}

TEST(LlamaModelTest, MissingTensorIsNamed) {
  SyntheticSpec spec;
  spec.edit_tensor = [](const std::string& name, std::vector<int64_t>&) {
    return name != "blk.1.ffn_up.weight";
  };
  absl::Status s = LoadStatus(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("blk.1.ffn_up.weight"), std::string::npos) << s;
}

TEST(LlamaModelTest, ShapeContradictingMetadataIsNamed) {
  SyntheticSpec spec;
  spec.edit_tensor = [](const std::string& name, std::vector<int64_t>& dims) {
    if (name == "blk.0.attn_k.weight") dims = {64, 48};  // GQA says 2 heads x 16 = 32 rows
    return true;
  };
  absl::Status s = LoadStatus(spec);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blk.0.attn_k.weight"), std::string::npos) << s;
}

TEST(LlamaModelTest, HeadCountNotDividingIsNamed) {
  SyntheticSpec spec;
  spec.heads = 4;
  spec.kv_heads = 3;
  absl::Status s = LoadStatus(spec);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("head_count_kv"), std::string::npos) << s;
}

}  // namespace
}  // namespace kvserve::engine
