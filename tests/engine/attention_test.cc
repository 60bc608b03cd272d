// KvPagePool and PagedAttention against a naive double-precision attention over unpaged K/V,
// with shuffled, interleaved pages, GQA, mixed decode/prefill rows, f32, bf16, f16 and q8_0 pools,
// on every ISA the CPU can run. The reference sees K/V rounded to the pool's dtype by this file's
// own rounding (frexp arithmetic for bf16 and f16, ggml's block_q8_0 recipe for q8_0), so the tolerance is the same for every dtype: 1e-5 of sum_j p_j |v_j|.
#include "engine/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "engine/kv_page_pool.h"
#include "engine/simd_internal.h"
#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

using internal::Isa;

// Rounds to bf16 (8 significant bits, ties to even) by arithmetic on the mantissa: an
// independent route from the bit manipulation in the pool.
float RoundToBf16(float x) {
  if (x == 0.f || !std::isfinite(x)) return x;
  int exponent;
  const double mantissa = std::frexp(static_cast<double>(x), &exponent);  // [0.5, 1)
  return static_cast<float>(std::ldexp(std::nearbyint(mantissa * 256.0) / 256.0, exponent));
}

float Bf16ToFloatForTest(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

// Rounds to IEEE half (11 significant bits, subnormals in steps of 2^-24, ties to even) by the
// same mantissa arithmetic: an independent route from the bit manipulation in the pool.
float RoundToF16(float x) {
  if (x == 0.f || !std::isfinite(x)) return x;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= 65520.0) return std::copysign(std::numeric_limits<float>::infinity(), x);
  int exponent;
  std::frexp(a, &exponent);  // a in [2^(exponent-1), 2^exponent)
  const double quantum = std::ldexp(1.0, exponent - 1 >= -14 ? exponent - 11 : -24);
  return static_cast<float>(std::copysign(std::nearbyint(a / quantum) * quantum, x));
}

// ggml's block_q8_0 recipe, per 32 consecutive values: d = f16(amax / 127), q = round-half-even(
// x * 127 / amax); the value read back is d * q.
void RoundToQ8_0(std::vector<float>& x) {
  for (size_t b = 0; b + 32 <= x.size(); b += 32) {
    double amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double{x[b + j]}));
    const float id = amax != 0 ? 127.f / static_cast<float>(amax) : 0.f;
    const float d = RoundToF16(static_cast<float>(amax) / 127.f);
    for (int j = 0; j < 32; ++j) x[b + j] = d * std::nearbyint(x[b + j] * id);
  }
}

// The values a pool of `dtype` gives back for x (rows of head_dim values, head_dim % 32 == 0
// for q8_0).
void RoundLikePool(KvDType dtype, std::vector<float>& x) {
  switch (dtype) {
    case KvDType::kF32:
      return;
    case KvDType::kBF16:
      for (float& v : x) v = RoundToBf16(v);
      return;
    case KvDType::kF16:
      for (float& v : x) v = RoundToF16(v);
      return;
    case KvDType::kQ8_0:
      RoundToQ8_0(x);
      return;
  }
}

std::vector<float> RandomVector(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(KvPagePoolTest, RejectsBadShapes) {
  KvPoolShape shape{
      .num_layers = 1, .num_kv_heads = 2, .head_dim = 8, .page_size = 4, .num_pages = 0};
  EXPECT_EQ(KvPagePool::Create(shape).status().code(), absl::StatusCode::kInvalidArgument);
  shape.num_pages = 1;
  shape.head_dim = -1;
  EXPECT_EQ(KvPagePool::Create(shape).status().code(), absl::StatusCode::kInvalidArgument);
  shape = {.num_layers = 1 << 30,
           .num_kv_heads = 1 << 30,
           .head_dim = 1 << 30,
           .page_size = 1 << 30,
           .num_pages = 1 << 30};
  EXPECT_EQ(KvPagePool::Create(shape).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(KvPagePoolTest, LayoutAlignmentAndConversion) {
  for (KvDType dtype : {KvDType::kF32, KvDType::kBF16}) {
    const KvPoolShape shape{.num_layers = 3,
                            .num_kv_heads = 2,
                            .head_dim = 6,
                            .page_size = 4,
                            .num_pages = 5,
                            .dtype = dtype};
    const size_t element = dtype == KvDType::kF32 ? 4 : 2;
    EXPECT_EQ(KvPagePool::PageBytes(shape), 2u * 3 * 2 * 4 * 6 * element);
    auto pool_or = KvPagePool::Create(shape);
    ASSERT_TRUE(pool_or.ok()) << pool_or.status();
    KvPagePool& pool = **pool_or;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pool.KeyBlock(0, 0, 0)) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pool.ValueBlock(0, 0, 0)) % 64, 0u);
    // [num_pages][num_kv_heads][page_size][head_dim] per layer.
    const auto* k0 = static_cast<const uint8_t*>(pool.KeyBlock(0, 0, 0));
    EXPECT_EQ(static_cast<const uint8_t*>(pool.KeyBlock(0, 0, 1)) - k0, 4 * 6 * element);
    EXPECT_EQ(static_cast<const uint8_t*>(pool.KeyBlock(0, 1, 0)) - k0, 2 * 4 * 6 * element);
    EXPECT_EQ(static_cast<const uint8_t*>(pool.KeyBlock(1, 0, 0)) - k0, 5 * 2 * 4 * 6 * element);

    // Positions 2..6 of a sequence whose pages are {3, 1}: 2,3 -> page 3 slots 2,3; 4..6 -> page 1.
    const std::vector<int32_t> page_table = {3, 1};
    const std::vector<int32_t> positions = {2, 3, 4, 5, 6};
    const std::vector<float> k = RandomVector(5 * 2 * 6, 1);
    const std::vector<float> v = RandomVector(5 * 2 * 6, 2);
    pool.Write(2, page_table, positions.data(), 5, k.data(), v.data());
    for (int t = 0; t < 5; ++t) {
      const int page = page_table[positions[t] / 4], slot = positions[t] % 4;
      for (int h = 0; h < 2; ++h) {
        for (int d = 0; d < 6; ++d) {
          const float want_k = k[(t * 2 + h) * 6 + d], want_v = v[(t * 2 + h) * 6 + d];
          float got_k, got_v;
          if (dtype == KvDType::kF32) {
            got_k = static_cast<const float*>(pool.KeyBlock(2, page, h))[slot * 6 + d];
            got_v = static_cast<const float*>(pool.ValueBlock(2, page, h))[slot * 6 + d];
            EXPECT_EQ(got_k, want_k);
            EXPECT_EQ(got_v, want_v);
          } else {
            got_k = Bf16ToFloatForTest(
                static_cast<const uint16_t*>(pool.KeyBlock(2, page, h))[slot * 6 + d]);
            got_v = Bf16ToFloatForTest(
                static_cast<const uint16_t*>(pool.ValueBlock(2, page, h))[slot * 6 + d]);
            EXPECT_EQ(got_k, RoundToBf16(want_k));
            EXPECT_EQ(got_v, RoundToBf16(want_v));
          }
        }
      }
    }
  }
}

TEST(KvPagePoolTest, RowBytesAndQ8HeadDim) {
  EXPECT_EQ(KvRowBytes(KvDType::kF32, 64), 256u);
  EXPECT_EQ(KvRowBytes(KvDType::kF16, 64), 128u);
  EXPECT_EQ(KvRowBytes(KvDType::kBF16, 128), 256u);
  EXPECT_EQ(KvRowBytes(KvDType::kQ8_0, 64), 68u);  // two blocks of (f16 d, 32 x int8)
  const KvPoolShape shape{.num_layers = 1,
                          .num_kv_heads = 1,
                          .head_dim = 48,
                          .page_size = 4,
                          .num_pages = 2,
                          .dtype = KvDType::kQ8_0};
  const absl::Status status = KvPagePool::Create(shape).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("multiple of 32"), std::string::npos) << status;
  EXPECT_EQ(ParseKvDType("q8_0").value(), KvDType::kQ8_0);
  EXPECT_EQ(ParseKvDType("f16").value(), KvDType::kF16);
  EXPECT_EQ(ParseKvDType("fp8").status().code(), absl::StatusCode::kInvalidArgument);
}

// Q8_0 rows hold ggml's block bytes: f16 d then 32 int8, checked on a block with known values.
TEST(KvPagePoolTest, Q8_0BlockBytes) {
  const KvPoolShape shape{.num_layers = 1,
                          .num_kv_heads = 1,
                          .head_dim = 32,
                          .page_size = 2,
                          .num_pages = 1,
                          .dtype = KvDType::kQ8_0};
  auto pool = *KvPagePool::Create(shape);
  float k[64] = {};
  k[0] = 127.f;   // amax: d = 1, scale 127 / amax = 1 exactly
  k[1] = -63.5f;  // ties round to even: -64
  k[2] = 0.5f;    // 0
  k[3] = 1.5f;    // 2
  k[4] = 2.5f;    // 2
  // the second token's row is all zeros: d = 0, q = 0
  const int32_t page_table[1] = {0};
  const int32_t positions[2] = {0, 1};
  pool->Write(0, page_table, positions, 2, k, k);
  const auto* bytes = static_cast<const uint8_t*>(pool->KeyBlock(0, 0, 0));
  uint16_t d;
  std::memcpy(&d, bytes, 2);
  EXPECT_EQ(d, 0x3c00);  // f16(1.0)
  const auto* q = reinterpret_cast<const int8_t*>(bytes + 2);
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], -64);
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(q[3], 2);
  EXPECT_EQ(q[4], 2);
  for (int j = 5; j < 32; ++j) EXPECT_EQ(q[j], 0);
  std::memcpy(&d, bytes + 34, 2);
  EXPECT_EQ(d, 0);
}

TEST(KvPagePoolTest, Bf16RoundsTiesToEven) {
  const KvPoolShape shape{.num_layers = 1,
                          .num_kv_heads = 1,
                          .head_dim = 4,
                          .page_size = 1,
                          .num_pages = 1,
                          .dtype = KvDType::kBF16};
  auto pool = *KvPagePool::Create(shape);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even -> 1. 1 + 3 * 2^-8 -> 1 + 2^-6.
  const float k[4] = {1.f + 1.f / 256, 1.f + 3.f / 256, -1.f - 1.f / 256 - 1.f / 4096,
                      std::numeric_limits<float>::quiet_NaN()};
  const int32_t page_table[1] = {0};
  const int32_t position = 0;
  pool->Write(0, page_table, &position, 1, k, k);
  const auto* bits = static_cast<const uint16_t*>(pool->KeyBlock(0, 0, 0));
  EXPECT_EQ(Bf16ToFloatForTest(bits[0]), 1.f);
  EXPECT_EQ(Bf16ToFloatForTest(bits[1]), 1.f + 1.f / 64);
  EXPECT_EQ(Bf16ToFloatForTest(bits[2]), -1.f - 1.f / 128);
  EXPECT_TRUE(std::isnan(Bf16ToFloatForTest(bits[3])));
}

struct SeqSpec {
  int32_t start_pos;
  int64_t num_rows;
};

// A batch of sequences with their K/V (f32, [position][kv_head][head_dim]) written to a pool
// whose pages are shuffled across sequences; every other byte of the pool is NaN, so reading a
// position that was never written poisons the result.
struct Batch {
  std::unique_ptr<KvPagePool> pool;
  std::vector<std::vector<int32_t>> page_tables;
  std::vector<std::vector<float>> keys, values;  // as the reference must see them
  std::vector<AttentionSequence> sequences;
  std::vector<float> q;
  int64_t total_rows = 0;
};

Batch MakeBatch(const std::vector<SeqSpec>& specs, const AttentionShape& shape, int page_size,
                KvDType dtype, int layer, uint32_t seed) {
  Batch b;
  const int num_layers = layer + 1;
  int total_pages = 0;
  for (const SeqSpec& s : specs)
    total_pages += (s.start_pos + s.num_rows + page_size - 1) / page_size;
  total_pages += 3;  // some pages no sequence uses
  b.pool = *KvPagePool::Create({.num_layers = num_layers,
                                .num_kv_heads = shape.num_kv_heads,
                                .head_dim = shape.head_dim,
                                .page_size = page_size,
                                .num_pages = total_pages,
                                .dtype = dtype});
  // All-ones bytes are a NaN in every dtype (f32, bf16, f16; a q8_0 block's f16 scale).
  for (int l = 0; l < num_layers; ++l) {
    for (int p = 0; p < total_pages; ++p) {
      for (int h = 0; h < shape.num_kv_heads; ++h) {
        std::memset(b.pool->KeyBlock(l, p, h), 0xff, b.pool->block_bytes());
        std::memset(b.pool->ValueBlock(l, p, h), 0xff, b.pool->block_bytes());
      }
    }
  }
  std::vector<int32_t> pages(total_pages);
  std::iota(pages.begin(), pages.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(pages.begin(), pages.end(), rng);
  size_t next_page = 0;
  const int64_t kv_row = static_cast<int64_t>(shape.num_kv_heads) * shape.head_dim;
  for (size_t s = 0; s < specs.size(); ++s) {
    const int64_t context = specs[s].start_pos + specs[s].num_rows;
    std::vector<int32_t> table((context + page_size - 1) / page_size);
    for (int32_t& page : table) page = pages[next_page++];
    std::vector<float> k = RandomVector(context * kv_row, seed * 31 + s);
    std::vector<float> v = RandomVector(context * kv_row, seed * 37 + s);
    // Written in two calls (cache, then this step's rows), to another layer too.
    std::vector<int32_t> positions(context);
    std::iota(positions.begin(), positions.end(), 0);
    const int64_t first = specs[s].start_pos;
    b.pool->Write(layer, table, positions.data(), first, k.data(), v.data());
    b.pool->Write(layer, table, positions.data() + first, context - first,
                  k.data() + first * kv_row, v.data() + first * kv_row);
    if (layer > 0) {
      const std::vector<float> other = RandomVector(context * kv_row, seed + 99);
      b.pool->Write(0, table, positions.data(), context, other.data(), other.data());
    }
    RoundLikePool(dtype, k);
    RoundLikePool(dtype, v);
    b.page_tables.push_back(std::move(table));
    b.keys.push_back(std::move(k));
    b.values.push_back(std::move(v));
  }
  for (size_t s = 0; s < specs.size(); ++s) {
    b.sequences.push_back({.first_row = b.total_rows,
                           .num_rows = specs[s].num_rows,
                           .start_pos = specs[s].start_pos,
                           .page_table = b.page_tables[s]});
    b.total_rows += specs[s].num_rows;
  }
  b.q = RandomVector(b.total_rows * shape.num_heads * shape.head_dim, seed + 7);
  return b;
}

// Naive causal attention in double; also returns sum_j p_j |v_j| per output element, the scale
// of the result that the tolerance is relative to.
void ReferenceAttention(const Batch& b, const AttentionShape& shape, std::vector<double>* out,
                        std::vector<double>* magnitude) {
  const int dim = shape.head_dim, group = shape.num_heads / shape.num_kv_heads;
  const int64_t q_row = static_cast<int64_t>(shape.num_heads) * dim;
  const int64_t kv_row = static_cast<int64_t>(shape.num_kv_heads) * dim;
  out->assign(b.total_rows * q_row, 0.0);
  magnitude->assign(b.total_rows * q_row, 0.0);
  for (size_t s = 0; s < b.sequences.size(); ++s) {
    const AttentionSequence& seq = b.sequences[s];
    for (int64_t i = 0; i < seq.num_rows; ++i) {
      const int64_t row = seq.first_row + i;
      const int64_t keys = seq.start_pos + i + 1;
      for (int h = 0; h < shape.num_heads; ++h) {
        const int kvh = h / group;
        const float* q = &b.q[row * q_row + h * dim];
        std::vector<double> scores(keys);
        double max_score = -INFINITY;
        for (int64_t p = 0; p < keys; ++p) {
          double dot = 0;
          for (int d = 0; d < dim; ++d) dot += double{q[d]} * b.keys[s][p * kv_row + kvh * dim + d];
          scores[p] = dot * shape.scale;
          max_score = std::max(max_score, scores[p]);
        }
        double sum = 0;
        for (double& x : scores) sum += (x = std::exp(x - max_score));
        for (int d = 0; d < dim; ++d) {
          double acc = 0, mag = 0;
          for (int64_t p = 0; p < keys; ++p) {
            const double v = b.values[s][p * kv_row + kvh * dim + d];
            acc += scores[p] * v;
            mag += scores[p] * std::fabs(v);
          }
          (*out)[row * q_row + h * dim + d] = acc / sum;
          (*magnitude)[row * q_row + h * dim + d] = mag / sum;
        }
      }
    }
  }
}

void ExpectMatchesReference(const Batch& b, const AttentionShape& shape,
                            const std::vector<float>& got, const std::string& what) {
  std::vector<double> want, magnitude;
  ReferenceAttention(b, shape, &want, &magnitude);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(got[i] - want[i]), 1e-5 * magnitude[i] + 1e-30)
        << what << " element " << i << " got " << got[i] << " want " << want[i];
  }
}

std::vector<float> RunAttention(const Batch& b, const AttentionShape& shape, int layer) {
  std::vector<float> out(b.q.size(), std::numeric_limits<float>::quiet_NaN());
  PagedAttention(*b.pool, layer, shape, b.sequences, b.q.data(), out.data());
  return out;
}

// (isa, dtype, page size, {heads, kv heads})
using AttentionParam = std::tuple<Isa, KvDType, int, std::pair<int, int>>;

class PagedAttentionTest : public ::testing::TestWithParam<AttentionParam> {
 protected:
  void SetUp() override { ASSERT_TRUE(internal::SetIsaForTesting(std::get<0>(GetParam()))); }
  void TearDown() override { internal::ResetIsaForTesting(); }
};

TEST_P(PagedAttentionTest, MixedBatchMatchesNaiveReference) {
  const KvDType dtype = std::get<1>(GetParam());
  const int page_size = std::get<2>(GetParam());
  const std::pair<int, int> heads = std::get<3>(GetParam());
  for (int head_dim : {64, 128, 20}) {  // 20: ragged against 8- and 16-lane vectors
    if (dtype == KvDType::kQ8_0 && head_dim % 32 != 0) continue;  // q8_0 needs 32-blocks
    const AttentionShape shape{.num_heads = heads.first,
                               .num_kv_heads = heads.second,
                               .head_dim = head_dim,
                               .scale = 1.f / std::sqrt(static_cast<float>(head_dim))};
    // First prompt chunk, decode steps, a later prefill chunk longer than one work item, a
    // first token.
    const std::vector<SeqSpec> specs = {{0, 7}, {13, 1}, {40, 1}, {5, 37}, {0, 1}, {2, 3}};
    const Batch b = MakeBatch(specs, shape, page_size, dtype, /*layer=*/1, 42 + page_size);
    ExpectMatchesReference(b, shape, RunAttention(b, shape, 1),
                           "head_dim " + std::to_string(head_dim));
  }
}

std::string AttentionParamName(const ::testing::TestParamInfo<AttentionParam>& info) {
  const std::pair<int, int> heads = std::get<3>(info.param);
  return std::string(internal::IsaName(std::get<0>(info.param))) + "_" +
         KvDTypeName(std::get<1>(info.param)) + "_page" + std::to_string(std::get<2>(info.param)) +
         "_h" + std::to_string(heads.first) + "_kv" + std::to_string(heads.second);
}

INSTANTIATE_TEST_SUITE_P(AllCases, PagedAttentionTest,
                         ::testing::Combine(::testing::ValuesIn(internal::AvailableIsas()),
                                            ::testing::Values(KvDType::kF32, KvDType::kBF16,
                                                              KvDType::kF16, KvDType::kQ8_0),
                                            ::testing::Values(1, 5, 16),
                                            // GQA ratios 1, 3, 3, 4, 8
                                            ::testing::Values(std::pair{4, 4}, std::pair{6, 2},
                                                              std::pair{15, 5}, std::pair{8, 2},
                                                              std::pair{8, 1})),
                         AttentionParamName);

class PagedAttentionIsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { ASSERT_TRUE(internal::SetIsaForTesting(GetParam())); }
  void TearDown() override { internal::ResetIsaForTesting(); }
};

// Contexts from 1 to 8192 keys, very different lengths in one batch, in every dtype.
TEST_P(PagedAttentionIsaTest, LongPrefillAndLongDecode) {
  const AttentionShape shape{.num_heads = 15, .num_kv_heads = 5, .head_dim = 64, .scale = 0.125f};
  for (KvDType dtype : {KvDType::kF32, KvDType::kF16, KvDType::kQ8_0}) {
    const Batch b = MakeBatch({{0, 300}, {8191, 1}, {700, 1}, {0, 1}}, shape, 16, dtype, 0, 5);
    ExpectMatchesReference(b, shape, RunAttention(b, shape, 0),
                           std::string("long ") + KvDTypeName(dtype));
  }
}

TEST_P(PagedAttentionIsaTest, SameResultOnOneOrTwoThreads) {
  const AttentionShape shape{.num_heads = 8, .num_kv_heads = 2, .head_dim = 64, .scale = 0.125f};
  const Batch b = MakeBatch({{0, 90}, {50, 1}, {77, 1}, {10, 20}}, shape, 16, KvDType::kBF16, 0, 6);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> one = RunAttention(b, shape, 0);
  omp_set_num_threads(2);
  const std::vector<float> two = RunAttention(b, shape, 0);
  omp_set_num_threads(threads);
  EXPECT_EQ(one, two);
}

// A long decode row runs as one item per 256-key chunk (flash-decoding) when it would otherwise
// hold a thread alone; its result must not depend on whether it was split: alone on one thread
// (never split), alone on two (split), and beside a long prefill (not split) give the same bits.
TEST_P(PagedAttentionIsaTest, SplitDecodeEqualsUnsplitBitwise) {
  const AttentionShape shape{.num_heads = 8, .num_kv_heads = 1, .head_dim = 64, .scale = 0.125f};
  for (KvDType dtype : {KvDType::kF32, KvDType::kF16, KvDType::kQ8_0}) {
    const Batch alone = MakeBatch({{3000, 1}}, shape, 16, dtype, 0, 9);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const std::vector<float> one = RunAttention(alone, shape, 0);
    omp_set_num_threads(2);
    const std::vector<float> two = RunAttention(alone, shape, 0);
    omp_set_num_threads(threads);
    ExpectMatchesReference(alone, shape, two, "split decode");
    EXPECT_EQ(one, two) << KvDTypeName(dtype);
    // The same sequence (same seed: the same K/V, and q's first row) before a 600-row prefill,
    // which leaves no reason to split it.
    const Batch mixed = MakeBatch({{3000, 1}, {0, 600}}, shape, 16, dtype, 0, 9);
    const size_t row = static_cast<size_t>(shape.num_heads) * shape.head_dim;
    ASSERT_TRUE(std::equal(alone.q.begin(), alone.q.begin() + row, mixed.q.begin()));
    const std::vector<float> batched = RunAttention(mixed, shape, 0);
    EXPECT_TRUE(std::equal(one.begin(), one.begin() + row, batched.begin())) << KvDTypeName(dtype);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, PagedAttentionIsaTest,
                         ::testing::ValuesIn(internal::AvailableIsas()),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(internal::IsaName(info.param));
                         });

// The vector paths against the scalar fallback on one mixed bf16 batch.
TEST(PagedAttentionCrossIsaTest, VectorPathsAgreeWithScalar) {
  const AttentionShape shape{.num_heads = 15, .num_kv_heads = 5, .head_dim = 64, .scale = 0.125f};
  const Batch b = MakeBatch({{0, 33}, {60, 1}, {9, 4}}, shape, 5, KvDType::kBF16, 0, 8);
  ASSERT_TRUE(internal::SetIsaForTesting(Isa::kScalar));
  const std::vector<float> scalar = RunAttention(b, shape, 0);
  for (Isa isa : internal::AvailableIsas()) {
    ASSERT_TRUE(internal::SetIsaForTesting(isa));
    const std::vector<float> got = RunAttention(b, shape, 0);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], scalar[i], 2e-6 * (1 + std::fabs(scalar[i])))
          << internal::IsaName(isa) << " element " << i;
    }
  }
  internal::ResetIsaForTesting();
}

}  // namespace
}  // namespace kvserve::engine
