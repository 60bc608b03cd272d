// Tests for engine/sampling.h. Expected values are hand-derived (penalties, kept sets) or
// computed here in double from the tiny logits (probabilities, log-softmax); the distribution
// tests are chi-square goodness-of-fit checks at the 0.999 level with fixed seeds.
#include "engine/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace kvserve::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Ten hand-chosen logits. Ranking: 4 (3.0), 6 (2.5), 1 (2.0), 8 (1.5), 0 (1.0), 2 (0.5),
// 9 (0.2), 5 (0.0), 7 (-0.5), 3 (-1.0).
const std::vector<float> kTenLogits = {1.0f, 2.0f, 0.5f,  -1.0f, 3.0f,
                                       0.0f, 2.5f, -0.5f, 1.5f,  0.2f};

// Deterministic test data without <random> distributions (implementation-defined).
std::vector<float> PseudoRandomLogits(int n, uint64_t seed, float scale = 5.0f) {
  Xoshiro256StarStar rng(seed);
  std::vector<float> logits(n);
  for (float& v : logits) v = static_cast<float>((rng.NextUniform() * 2.0 - 1.0) * scale);
  return logits;
}

// softmax(values / temperature) restricted to `kept` (probabilities of the others are 0).
std::vector<double> ExpectedProbs(const std::vector<double>& values, double temperature,
                                  const std::vector<int>& kept) {
  double max = -1e300;
  for (int i : kept) max = std::max(max, values[i]);
  std::vector<double> p(values.size(), 0.0);
  double sum = 0.0;
  for (int i : kept) sum += p[i] = std::exp((values[i] - max) / temperature);
  for (double& v : p) v /= sum;
  return p;
}

std::vector<double> ToDouble(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Upper 0.999 quantiles of the chi-square distribution, by degrees of freedom (standard table;
// checked against the regularized incomplete gamma function).
double ChiSquareQuantile999(int dof) {
  static const double kTable[] = {0,      10.828, 13.816, 16.266, 18.467,
                                  20.515, 22.458, 24.322, 26.124, 27.877};
  EXPECT_GE(dof, 1);
  EXPECT_LE(dof, 9);
  return kTable[dof];
}

std::vector<int> Draw(const std::vector<float>& logits, const SamplingParams& params,
                      SamplerState& state, int n) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[Sample(logits, params, state).token];
  return counts;
}

// Chi-square over tokens with expected probability > 0; tokens with 0 must never be drawn.
void ExpectFits(const std::vector<int>& counts, const std::vector<double>& expected, int n) {
  double chi2 = 0.0;
  int cells = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " was filtered out but drawn";
      continue;
    }
    const double e = expected[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++cells;
  }
  EXPECT_LT(chi2, ChiSquareQuantile999(cells - 1)) << "cells " << cells;
}

constexpr int kDraws = 100000;

TEST(SamplingDistributionTest, TemperatureOnly) {
  SamplingParams params;
  params.temperature = 0.7f;
  SamplerState state(1001, {});
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  ExpectFits(Draw(kTenLogits, params, state, kDraws), ExpectedProbs(ToDouble(kTenLogits), 0.7, all),
             kDraws);
}

TEST(SamplingDistributionTest, TopK3) {
  SamplingParams params;
  params.top_k = 3;
  SamplerState state(1002, {});
  ExpectFits(Draw(kTenLogits, params, state, kDraws),
             ExpectedProbs(ToDouble(kTenLogits), 1.0, {4, 6, 1}), kDraws);
}

TEST(SamplingDistributionTest, TopP08) {
  // At T = 1 the ranked cumulative masses are 0.389, 0.624, 0.767, 0.854, ...: the smallest
  // prefix reaching 0.8 is {4, 6, 1, 8}.
  SamplingParams params;
  params.top_p = 0.8f;
  SamplerState state(1003, {});
  ExpectFits(Draw(kTenLogits, params, state, kDraws),
             ExpectedProbs(ToDouble(kTenLogits), 1.0, {4, 6, 1, 8}), kDraws);
}

TEST(SamplingDistributionTest, MinP02AtTemperature2) {
  // p / max(p) >= 0.2  <=>  (x - 3) / 2 >= ln 0.2  <=>  x >= -0.219: drops tokens 7 and 3.
  SamplingParams params;
  params.temperature = 2.0f;
  params.min_p = 0.2f;
  SamplerState state(1004, {});
  ExpectFits(Draw(kTenLogits, params, state, kDraws),
             ExpectedProbs(ToDouble(kTenLogits), 2.0, {0, 1, 2, 4, 5, 6, 8, 9}), kDraws);
}

TEST(SamplingDistributionTest, PenaltiesBiasAndAllTruncations) {
  // Prompt {6}; output 1, 1. Penalized logits, by hand:
  //   6: 2.5 / 1.3 = 1.923 (repetition)     1: 2.0 / 1.3 - 0.2 * 2 - 0.1 = 1.038
  //   3: -1 + 3 = 2.0 (bias)                others unchanged.
  // Ranking 4 (3), 3 (2), 6 (1.923), 8 (1.5), 1 (1.038), 0 (1.0), ...; top-k 6 keeps those six.
  // At T = 0.8 their cumulative masses are 0.535, 0.689, 0.828, 0.910, ...: top-p 0.85 keeps
  // {4, 3, 6, 8}; p / max(p) is 1, 0.287, 0.260, 0.153, so min-p 0.2 drops 8.
  SamplingParams params;
  params.temperature = 0.8f;
  params.top_k = 6;
  params.top_p = 0.85f;
  params.min_p = 0.2f;
  params.repetition_penalty = 1.3f;
  params.frequency_penalty = 0.2f;
  params.presence_penalty = 0.1f;
  params.logit_bias = {{3, 3.0f}};
  SamplerState state(1005, std::vector<int32_t>{6});
  state.Accept(1);
  state.Accept(1);
  std::vector<double> penalized = ToDouble(kTenLogits);
  penalized[6] = 2.5 / 1.3;
  penalized[1] = 2.0 / 1.3 - 0.2 * 2 - 0.1;
  penalized[3] = -1.0 + 3.0;
  ExpectFits(Draw(kTenLogits, params, state, kDraws), ExpectedProbs(penalized, 0.8, {4, 3, 6}),
             kDraws);
}

TEST(SamplingDistributionTest, TopPKeepsManyLightTokens) {
  // One token of weight 1 and 999 of weight a = 0.003 (logit ln a). Total 3.997; top-p 0.5
  // needs mass 1.9985, i.e. the heavy token and ceil(0.9985 / a) = ceil(332.83) = 333 light
  // ones, which tie and so go by id: tokens 0..333. The light tokens weigh only 1.5x the
  // (1 - top_p) * total / vocab cut-off that the sampler may use to skip tokens, so this
  // checks that cut-off is not too eager.
  constexpr int kVocab = 1000;
  constexpr int kKept = 334;
  const double a = 0.003;
  std::vector<float> logits(kVocab, static_cast<float>(std::log(a)));
  logits[0] = 0.0f;
  SamplingParams params;
  params.top_p = 0.5f;
  SamplerState state(10, {});
  const std::vector<int> counts = Draw(logits, params, state, 10000);
  // Cells: token 0, then the 333 light kept tokens in 9 bins of 37; nothing beyond.
  const double heavy = 1.0 / (1.0 + 333 * a);
  std::vector<int> binned(10, 0);
  std::vector<double> expected(10, 37 * a * heavy);
  expected[0] = heavy;
  binned[0] = counts[0];
  for (int i = 1; i < kVocab; ++i) {
    if (i < kKept) {
      binned[1 + (i - 1) / 37] += counts[i];
    } else {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the top-p set";
    }
  }
  ExpectFits(binned, expected, 10000);
}

TEST(SamplingDistributionTest, TopKTiesKeepLowerIds) {
  SamplingParams params;
  params.top_k = 2;
  SamplerState state(7, {});
  const std::vector<float> flat = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  ExpectFits(Draw(flat, params, state, 20000), {0.5, 0.5, 0, 0, 0}, 20000);
}

TEST(SamplingDistributionTest, TinyTopPKeepsOnlyTheBest) {
  SamplingParams params;
  params.top_p = 1e-6f;
  SamplerState state(8, {});
  const std::vector<int> counts = Draw(kTenLogits, params, state, 1000);
  EXPECT_EQ(counts[4], 1000);
}

TEST(SamplingDistributionTest, InfiniteAndNanLogitsAreNeverDrawn) {
  SamplingParams params;
  SamplerState state(9, {});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits = {-kInf, nan, 0.5f, -kInf, 0.5f};
  ExpectFits(Draw(logits, params, state, 20000), {0, 0, 0.5, 0, 0.5}, 20000);
  // NaN is left out of the normalizer too: log(exp(0.5) / (2 exp(0.5))).
  EXPECT_NEAR(Sample(logits, params, state).logprob, std::log(0.5), 1e-6);
  params.temperature = 0.0f;
  EXPECT_EQ(Sample(logits, params, state).token, 2);
}

TEST(SamplingGreedyTest, PicksArgMaxAndBreaksTiesToLowestId) {
  SamplingParams params;
  params.temperature = 0.0f;
  SamplerState state(1, {});
  EXPECT_EQ(Sample(kTenLogits, params, state).token, 4);
  const std::vector<float> tied = {0.0f, 2.0f, -1.0f, 2.0f, 2.0f};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Sample(tied, params, state).token, 1);
}

TEST(SamplingGreedyTest, PenaltiesAndBiasChangeTheChoice) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.repetition_penalty = 2.0f;  // 3.0 -> 1.5 for token 4, below 2.5 (token 6)
  SamplerState state(1, std::vector<int32_t>{4});
  EXPECT_EQ(Sample(kTenLogits, params, state).token, 6);
  params.logit_bias = {{3, 4.5f}};  // -1 + 4.5 = 3.5 beats everything
  EXPECT_EQ(Sample(kTenLogits, params, state).token, 3);
}

// Penalties on a tiny vocabulary. Prompt {0, 1}; generated 2, 2, 1.
class PenaltyTest : public ::testing::Test {
 protected:
  PenaltyTest() : state_(1, std::vector<int32_t>{0, 1}) {
    state_.Accept(2);
    state_.Accept(2);
    state_.Accept(1);
  }
  std::vector<float> Apply(const SamplingParams& params) {
    std::vector<float> x = logits_;
    ApplyPenaltiesAndBias(absl::MakeSpan(x), params, state_);
    return x;
  }
  const std::vector<float> logits_ = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f};
  SamplerState state_;
};

TEST_F(PenaltyTest, NoPenaltiesLeaveLogitsAlone) { EXPECT_EQ(Apply(SamplingParams{}), logits_); }

TEST_F(PenaltyTest, RepetitionCoversPromptAndOutput) {
  SamplingParams params;
  params.repetition_penalty = 2.0f;
  // 0 (prompt, > 0): 2 / 2; 1 (both, < 0): -1 * 2; 2 (output, > 0): 0.5 / 2; others unseen.
  EXPECT_EQ(Apply(params), (std::vector<float>{1.0f, -2.0f, 0.25f, 3.0f, -2.0f, 1.0f}));
}

TEST_F(PenaltyTest, FrequencyCountsOutputOnly) {
  SamplingParams params;
  params.frequency_penalty = 0.5f;
  // 1 generated once: -1 - 0.5; 2 generated twice: 0.5 - 1.0; token 0 is only in the prompt.
  EXPECT_EQ(Apply(params), (std::vector<float>{2.0f, -1.5f, -0.5f, 3.0f, -2.0f, 1.0f}));
}

TEST_F(PenaltyTest, PresenceIsOncePerGeneratedToken) {
  SamplingParams params;
  params.presence_penalty = 0.25f;
  EXPECT_EQ(Apply(params), (std::vector<float>{2.0f, -1.25f, 0.25f, 3.0f, -2.0f, 1.0f}));
}

TEST_F(PenaltyTest, NegativePenaltiesEncourage) {
  SamplingParams params;
  params.presence_penalty = -1.0f;
  params.frequency_penalty = -0.5f;
  // 1: -1 + 0.5 + 1 = 0.5; 2: 0.5 + 1 + 1 = 2.5.
  EXPECT_EQ(Apply(params), (std::vector<float>{2.0f, 0.5f, 2.5f, 3.0f, -2.0f, 1.0f}));
}

TEST_F(PenaltyTest, AllTogetherThenBias) {
  SamplingParams params;
  params.repetition_penalty = 2.0f;
  params.frequency_penalty = 0.5f;
  params.presence_penalty = 0.25f;
  params.logit_bias = {{0, 1.0f}, {4, 5.0f}, {3, -1.0f}};
  // 0: 2 / 2 + 1 (bias after repetition, not (2 + 1) / 2); 1: -1 * 2 - 0.5 - 0.25;
  // 2: 0.5 / 2 - 1.0 - 0.25; 3: 3 - 1; 4: -2 + 5.
  EXPECT_EQ(Apply(params), (std::vector<float>{2.0f, -2.75f, -1.0f, 2.0f, 3.0f, 1.0f}));
}

TEST(SamplingValidateTest, DefaultsAndEdgesAreValid) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}, 10).ok());
  SamplingParams edges;
  edges.temperature = 0.0f;
  edges.top_p = 1.0f;
  edges.min_p = 1.0f;
  edges.presence_penalty = -2.0f;
  edges.frequency_penalty = 2.0f;
  edges.logit_bias = {{0, -100.0f}, {9, 100.0f}};
  edges.num_logprobs = 20;
  edges.top_k = 1000;  // larger than the vocabulary just means "off"
  EXPECT_TRUE(ValidateSamplingParams(edges, 10).ok());
}

TEST(SamplingValidateTest, RejectsEachBadFieldByName) {
  struct Case {
    std::string field;
    void (*mutate)(SamplingParams&);
  };
  const std::vector<Case> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature",
       [](SamplingParams& p) { p.temperature = std::numeric_limits<float>::quiet_NaN(); }},
      {"temperature", [](SamplingParams& p) { p.temperature = kInf; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -1; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.01f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = std::numeric_limits<float>::quiet_NaN(); }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.01f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = -1.0f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 2.5f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = -2.01f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = -3.0f; }},
      {"frequency_penalty",
       [](SamplingParams& p) { p.frequency_penalty = std::numeric_limits<float>::quiet_NaN(); }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{10, 1.0f}};
       }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{-1, 1.0f}};
       }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{2, 101.0f}};
       }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{2, 1.0f}, {3, 1.0f}, {2, 0.5f}};
       }},
      {"num_logprobs", [](SamplingParams& p) { p.num_logprobs = 21; }},
      {"num_logprobs", [](SamplingParams& p) { p.num_logprobs = -1; }},
  };
  for (const Case& c : cases) {
    SamplingParams params;
    c.mutate(params);
    const absl::Status status = ValidateSamplingParams(params, 10);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(status.message().find(c.field), std::string_view::npos) << status.message();
  }
  EXPECT_EQ(ValidateSamplingParams(SamplingParams{}, 0).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SamplingRngTest, MatchesReferenceXoshiro256StarStar) {
  // splitmix64(0)'s first output is the published 0xe220a8397b1dcdaf; these streams come from an
  // independent Python implementation of splitmix64 seeding + xoshiro256**.
  Xoshiro256StarStar zero(0);
  EXPECT_EQ(zero.Next(), 0x99ec5f36cb75f2b4ULL);
  EXPECT_EQ(zero.Next(), 0xbf6e1f784956452aULL);
  EXPECT_EQ(zero.Next(), 0x1a5f849d4933e6e0ULL);
  EXPECT_EQ(zero.Next(), 0x6aa594f1262d2d2cULL);  // the first output the state update shapes
  Xoshiro256StarStar other(12345);
  EXPECT_EQ(other.Next(), 0xbe6a36374160d49bULL);
  EXPECT_EQ(other.Next(), 0x214aaa0637a688c6ULL);
  EXPECT_EQ(other.Next(), 0xf69d16de9954d388ULL);
  EXPECT_EQ(other.Next(), 0x0c60048c4e96e033ULL);
  Xoshiro256StarStar uniform(0);
  EXPECT_EQ(uniform.NextUniform(),
            static_cast<double>(0x99ec5f36cb75f2b4ULL >> 11) / 9007199254740992.0);
}

std::vector<int32_t> DrawSequence(uint64_t seed, const std::vector<float>& logits, int n) {
  SamplingParams params;
  params.temperature = 1.5f;
  SamplerState state(seed, {});
  std::vector<int32_t> tokens;
  for (int i = 0; i < n; ++i) tokens.push_back(Sample(logits, params, state).token);
  return tokens;
}

TEST(SamplingSeedTest, SameSeedSameDrawsDifferentSeedsDiffer) {
  const std::vector<float> logits = PseudoRandomLogits(1000, 5, 1.0f);
  const std::vector<int32_t> a = DrawSequence(42, logits, 200);
  EXPECT_EQ(a, DrawSequence(42, logits, 200));
  EXPECT_NE(a, DrawSequence(43, logits, 200));
}

TEST(SamplingSeedTest, UnseededStatesDrawDistinctSeeds) {
  SamplerState a(std::nullopt, {});
  SamplerState b(std::nullopt, {});
  EXPECT_NE(a.seed(), b.seed());
  SamplerState seeded(77, {});
  EXPECT_EQ(seeded.seed(), 77u);
}

TEST(SamplingSeedTest, GreedyStillAdvancesTheStream) {
  // One draw per call: a greedy step followed by a sampled step matches skipping one draw.
  const std::vector<float> logits = PseudoRandomLogits(1000, 6, 1.0f);
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  SamplingParams sampled;
  SamplerState a(11, {});
  Sample(logits, greedy, a);
  SamplerState b(11, {});
  b.rng().Next();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Sample(logits, sampled, a).token, Sample(logits, sampled, b).token);
  }
}

SamplingParams RowParams(int row) {
  SamplingParams p;
  p.seed = 1000 + row;
  p.temperature = 0.5f + 0.05f * static_cast<float>(row % 7);
  if (row % 3 == 0) p.top_k = 5 + row;
  if (row % 4 == 1) p.top_p = 0.9f;
  if (row % 5 == 2) p.min_p = 0.05f;
  if (row % 6 == 3) p.repetition_penalty = 1.2f;
  if (row % 8 == 5) p.temperature = 0.0f;
  p.frequency_penalty = 0.1f * static_cast<float>(row % 3);
  p.num_logprobs = row % 4;
  return p;
}

TEST(SamplingBatchTest, RowResultDoesNotDependOnTheBatch) {
  constexpr int kRows = 32;
  constexpr int kVocab = 3000;
  constexpr int kRow = 7;
  constexpr int kSteps = 12;
  std::vector<SamplingParams> params;
  std::vector<SamplerState> batch_states;
  for (int r = 0; r < kRows; ++r) {
    params.push_back(RowParams(r));
    ASSERT_TRUE(ValidateSamplingParams(params.back(), kVocab).ok());
    batch_states.emplace_back(params.back().seed, std::vector<int32_t>{r, 2 * r + 1});
  }
  SamplerState alone_state(params[kRow].seed, std::vector<int32_t>{kRow, 2 * kRow + 1});
  std::vector<const SamplingParams*> param_ptrs;
  std::vector<SamplerState*> state_ptrs;
  for (int r = 0; r < kRows; ++r) {
    param_ptrs.push_back(&params[r]);
    state_ptrs.push_back(&batch_states[r]);
  }
  for (int step = 0; step < kSteps; ++step) {
    const std::vector<float> matrix = PseudoRandomLogits(kRows * kVocab, 100 + step, 3.0f);
    std::vector<SampleResult> batch(kRows);
    SampleBatch(matrix, kVocab, param_ptrs, state_ptrs, absl::MakeSpan(batch));
    SampleResult alone;
    const SamplingParams* one_param = &params[kRow];
    SamplerState* one_state = &alone_state;
    SampleBatch(absl::MakeConstSpan(matrix).subspan(kRow * kVocab, kVocab), kVocab,
                absl::MakeConstSpan(&one_param, 1), absl::MakeConstSpan(&one_state, 1),
                absl::MakeSpan(&alone, 1));
    EXPECT_EQ(alone.token, batch[kRow].token) << "step " << step;
    EXPECT_EQ(alone.logprob, batch[kRow].logprob);
    EXPECT_EQ(alone.top_logprobs, batch[kRow].top_logprobs);
    for (int r = 0; r < kRows; ++r) batch_states[r].Accept(batch[r].token);
    alone_state.Accept(alone.token);
  }
}

TEST(SamplingLogprobsTest, RawLogSoftmaxAndSortedTopN) {
  constexpr int kVocab = 5000;
  const std::vector<float> logits = PseudoRandomLogits(kVocab, 21, 6.0f);
  double max = -1e300;
  for (float v : logits) max = std::max(max, static_cast<double>(v));
  double sum = 0.0;
  for (float v : logits) sum += std::exp(v - max);
  const double log_z = max + std::log(sum);
  std::vector<int> by_rank(kVocab);
  std::iota(by_rank.begin(), by_rank.end(), 0);
  std::sort(by_rank.begin(), by_rank.end(), [&](int a, int b) { return logits[a] > logits[b]; });

  // Penalties, bias and truncation shape the draw but not the reported logprobs.
  SamplingParams params;
  params.temperature = 0.0f;
  params.num_logprobs = 20;
  params.repetition_penalty = 1.5f;
  params.presence_penalty = 0.5f;
  params.logit_bias = {{by_rank[300], 50.0f}};
  SamplerState state(3, std::vector<int32_t>{by_rank[0], by_rank[1]});
  state.Accept(by_rank[2]);
  const SampleResult greedy = Sample(logits, params, state);
  EXPECT_EQ(greedy.token, by_rank[300]);
  EXPECT_NEAR(greedy.logprob, logits[by_rank[300]] - log_z, 1e-5);
  ASSERT_EQ(greedy.top_logprobs.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(greedy.top_logprobs[i].first, by_rank[i]) << i;
    EXPECT_NEAR(greedy.top_logprobs[i].second, logits[by_rank[i]] - log_z, 1e-5) << i;
    if (i > 0) {
      EXPECT_GE(greedy.top_logprobs[i - 1].second, greedy.top_logprobs[i].second);
    }
  }

  SamplingParams sampled;
  sampled.temperature = 0.7f;
  sampled.top_k = 50;
  sampled.num_logprobs = 3;
  for (int i = 0; i < 50; ++i) {
    const SampleResult r = Sample(logits, sampled, state);
    EXPECT_NEAR(r.logprob, logits[r.token] - log_z, 1e-5);
    ASSERT_EQ(r.top_logprobs.size(), 3u);
    EXPECT_EQ(r.top_logprobs[0].first, by_rank[0]);
  }
  SamplingParams none;
  EXPECT_TRUE(Sample(logits, none, state).top_logprobs.empty());
}

// A matcher that allows a fixed set of tokens and records what it was told.
class SetMatcher : public TokenMatcher {
 public:
  explicit SetMatcher(std::vector<int32_t> allowed, std::vector<int32_t>* accepted)
      : allowed_(std::move(allowed)), accepted_(accepted) {}
  int64_t FillAllowed(absl::Span<uint64_t> bits) override {
    std::fill(bits.begin(), bits.end(), 0);
    for (int32_t t : allowed_) bits[t / 64] |= uint64_t{1} << (t % 64);
    return static_cast<int64_t>(allowed_.size());
  }
  void Accept(int32_t token) override { accepted_->push_back(token); }

 private:
  std::vector<int32_t> allowed_;
  std::vector<int32_t>* accepted_;
};

TEST(SamplingConstraintTest, OnlyAllowedTokensAreSampledAndLogprobsStayRaw) {
  std::vector<float> logits(300, 0.0f);
  logits[5] = 10.0f;  // the model's favourite, not allowed
  logits[70] = 1.0f;
  logits[200] = 2.0f;
  std::vector<int32_t> accepted;
  SamplingParams greedy;
  greedy.temperature = 0;
  SamplerState state(1, {},
                     std::make_unique<SetMatcher>(std::vector<int32_t>{70, 200, 299}, &accepted));
  SampleResult r = Sample(logits, greedy, state);
  EXPECT_EQ(r.token, 200);
  // The logprob is the unconstrained model's: log-softmax of the raw row.
  double z = 0;
  for (float x : logits) z += std::exp(static_cast<double>(x));
  EXPECT_NEAR(r.logprob, 2.0 - std::log(z), 1e-4);
  state.Accept(r.token);
  EXPECT_EQ(accepted, std::vector<int32_t>{200});

  SamplingParams hot;  // temperature 1, top-k 2: still only allowed tokens
  hot.top_k = 2;
  for (int i = 0; i < 200; ++i) {
    const int32_t t = Sample(logits, hot, state).token;
    EXPECT_TRUE(t == 70 || t == 200) << t;
  }
  // A matcher that allows nothing leaves the row alone (the model's best is chosen).
  SamplerState empty(1, {}, std::make_unique<SetMatcher>(std::vector<int32_t>{}, &accepted));
  EXPECT_EQ(Sample(logits, greedy, empty).token, 5);
}

}  // namespace
}  // namespace kvserve::engine
