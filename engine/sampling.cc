#include "engine/sampling.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/check.h"

namespace kvserve::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

absl::Status OutOfRange(absl::string_view field, double value, absl::string_view range) {
  return absl::InvalidArgumentError(absl::StrCat("sampling parameter ", field, " = ", value,
                                                 " is out of range: must be ", range));
}

// A token competing in a truncated draw. Ranking order: higher logit first, then lower id.
struct Candidate {
  float logit;
  float weight;  // exp((logit - max_logit) / temperature), i.e. p / max(p)
  int32_t id;
};

// A function object rather than a function so the standard algorithms inline it.
constexpr auto RanksBefore = [](const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
};

// Scratch per thread, reused across calls so a step does not allocate per row.
struct Scratch {
  std::vector<float> logits;
  std::vector<float> weights;
  std::vector<Candidate> candidates;
  std::vector<uint64_t> allowed;  // a structured-output mask, one bit per token
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// exp(x) for x <= 0, within a few ulp, and exactly 0 below -87 (where expf turns subnormal;
// such weights are < 1e-37 of the best token's). NaN gives 0. Written without calls or
// branches so the loops using it vectorize: the exp passes over 150k-token vocabularies are the
// main cost of sampling. Range reduction x = n ln2 + r, |r| <= ln2 / 2, then a degree-6
// polynomial for exp(r) (Cephes expf coefficients) and 2^n built in the exponent bits.
// (sampling.cc is compiled with -fno-trapping-math so these selects become vector blends.)
inline float ExpNonPositive(float x) {
  const bool tiny = !(x >= -87.0f);  // also catches NaN
  x = tiny ? -87.0f : x;
  // Round x * log2(e) to the nearest integer with the 1.5 * 2^23 trick (no floor call).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return tiny ? 0.0f : p * scale;
}

// Largest non-NaN value (-inf if none). Sixteen independent running maxima keep the vector
// units busy (a single one is a dependency chain, about 4x slower).
float MaxOf(absl::Span<const float> x) {
  constexpr int kLanes = 16;
  const float* data = x.data();
  const int64_t n = static_cast<int64_t>(x.size());
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, kNegInf);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] = data[i + j] > lanes[j] ? data[i + j] : lanes[j];
  }
  float max = kNegInf;
  for (; i < n; ++i) max = data[i] > max ? data[i] : max;
  for (float lane : lanes) max = lane > max ? lane : max;
  return max;
}

// Lowest id holding `max` (which must occur in x).
int32_t FirstIndexOf(absl::Span<const float> x, float max) {
  const float* data = x.data();
  const int32_t n = static_cast<int32_t>(x.size());
  for (int32_t i = 0; i < n; ++i) {
    if (data[i] == max) return i;
  }
  return 0;
}

// log(sum(exp(x))) over the non-NaN entries, accumulated in double.
double LogSumExp(absl::Span<const float> x) {
  const float max = MaxOf(x);
  if (!std::isfinite(max)) return max;
  double sum = 0.0;
  const float* data = x.data();
  const int64_t n = static_cast<int64_t>(x.size());
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += ExpNonPositive(data[i] - max);
  return static_cast<double>(max) + std::log(sum);
}

// weights[i] = exp((x[i] - max_logit) * inv_temperature), for x[i] <= max_logit. Returns their
// sum.
double ComputeWeights(absl::Span<const float> x, float max_logit, float inv_temperature,
                      std::vector<float>& weights) {
  weights.resize(x.size());
  const float* in = x.data();
  float* out = weights.data();
  const int64_t n = static_cast<int64_t>(x.size());
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    out[i] = ExpNonPositive((in[i] - max_logit) * inv_temperature);
    sum += out[i];
  }
  return sum;
}

// The k best-ranked entries of x (NaN counts as -inf), in no particular order. A heap of the k
// best so far, its worst on top: on real logits almost every entry loses one comparison with
// the top, so this is about one pass for small k.
void SelectTopK(absl::Span<const float> x, int32_t k, std::vector<Candidate>& out) {
  out.clear();
  const int32_t n = static_cast<int32_t>(x.size());
  k = std::min(k, n);
  for (int32_t i = 0; i < k; ++i) out.push_back({x[i] == x[i] ? x[i] : kNegInf, 0.0f, i});
  std::make_heap(out.begin(), out.end(), RanksBefore);
  for (int32_t i = k; i < n; ++i) {
    const Candidate next{x[i] == x[i] ? x[i] : kNegInf, 0.0f, i};
    if (RanksBefore(next, out.front())) {
      std::pop_heap(out.begin(), out.end(), RanksBefore);
      out.back() = next;
      std::push_heap(out.begin(), out.end(), RanksBefore);
    }
  }
}

std::vector<std::pair<int32_t, float>> TopLogprobs(absl::Span<const float> raw, int32_t n,
                                                   double log_normalizer) {
  std::vector<Candidate>& top = ThreadScratch().candidates;
  SelectTopK(raw, n, top);
  std::sort(top.begin(), top.end(), RanksBefore);
  std::vector<std::pair<int32_t, float>> result;
  result.reserve(top.size());
  for (const Candidate& t : top) {
    result.emplace_back(t.id, static_cast<float>(t.logit - log_normalizer));
  }
  return result;
}

// Keeps the smallest best-ranked prefix of `c` whose weight is >= top_p of the total, without
// sorting it all: a quickselect guided by mass. Each round splits the undecided range [lo, hi)
// at its median rank with nth_element; if the better half already completes the mass, the
// worse half is dropped, else the better half is kept and the search moves right. Expected
// cost is a few passes over c whatever the size of the kept set; the last small range is sorted.
// `total` is the weight of every token still in the running, including any left out of `c` for
// being too light to matter.
void TruncateTopP(std::vector<Candidate>& c, double top_p, double total) {
  const double target = top_p * total;
  size_t lo = 0;
  size_t hi = c.size();
  double kept_mass = 0.0;  // of c[0, lo), which all rank before c[lo, hi)
  while (hi - lo > 64) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(c.begin() + lo, c.begin() + mid, c.begin() + hi, RanksBefore);
    double better = 0.0;
    for (size_t i = lo; i < mid; ++i) better += c[i].weight;
    if (kept_mass + better >= target) {
      hi = mid;
    } else {
      kept_mass += better;
      lo = mid;
    }
  }
  std::sort(c.begin() + lo, c.begin() + hi, RanksBefore);
  for (size_t i = lo; i < hi; ++i) {
    kept_mass += c[i].weight;
    if (kept_mass >= target) {
      c.resize(i + 1);
      return;
    }
  }
  // Summation order made the mass fall just short of target: keep everything up to hi.
  c.resize(hi);
}

// Inverse CDF in ascending id order over weights given by `weight_of(i)` for ids `id_of(i)`,
// i < n, whose sum is `total`. Returns the smallest id whose cumulative weight exceeds
// u * total.
template <typename IdOf, typename WeightOf>
int32_t InverseCdf(size_t n, IdOf id_of, WeightOf weight_of, double total, double u) {
  const double target = u * total;
  double cumulative = 0.0;
  int32_t last_positive = id_of(0);
  for (size_t i = 0; i < n; ++i) {
    const double w = weight_of(i);
    if (w <= 0.0) continue;
    cumulative += w;
    last_positive = id_of(i);
    if (target < cumulative) return last_positive;
  }
  return last_positive;  // u * total rounded up to the total
}

int32_t SampleTruncated(absl::Span<const float> x, float max_logit, const SamplingParams& params,
                        double u) {
  const int32_t vocab = static_cast<int32_t>(x.size());
  const float inv_temperature = 1.0f / params.temperature;
  Scratch& scratch = ThreadScratch();
  std::vector<Candidate>& c = scratch.candidates;
  bool in_id_order = false;
  double total = 0.0;
  if (params.top_k > 0 && params.top_k < vocab) {
    SelectTopK(x, params.top_k, c);
    for (Candidate& t : c) {
      t.weight = ExpNonPositive((t.logit - max_logit) * inv_temperature);
      total += t.weight;
    }
  } else {
    // Tokens of weight 0 add no mass and can never be drawn, so they need not compete. With
    // top-p, neither can tokens lighter than (1 - top_p) * total / vocab: together they weigh
    // at most (1 - top_p) * total, so the heavier tokens, which all rank before them, already
    // reach the top-p mass. On peaked distributions this leaves few candidates.
    total = ComputeWeights(x, max_logit, inv_temperature, scratch.weights);
    const float min_weight =
        params.top_p < 1.0f ? static_cast<float>((1.0 - params.top_p) * total / vocab) : 0.0f;
    c.clear();
    for (int32_t i = 0; i < vocab; ++i) {
      const float w = scratch.weights[i];
      if (w > 0.0f && w >= min_weight) c.push_back({x[i], w, i});
    }
    in_id_order = true;
  }
  if (params.top_p < 1.0f) {
    TruncateTopP(c, params.top_p, total);
    in_id_order = false;
  }
  if (params.min_p > 0.0f) {
    // The best token has weight exp(0) = 1, so weight = p / max(p) for the kept set.
    const float min_weight = params.min_p;
    std::erase_if(c, [&](const Candidate& t) { return t.weight < min_weight; });
  }
  KVSERVE_CHECK_MSG(!c.empty(), "truncation removed every token");
  if (!in_id_order) {
    std::sort(c.begin(), c.end(),
              [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
  }
  double kept_total = 0.0;
  for (const Candidate& t : c) kept_total += t.weight;
  return InverseCdf(
      c.size(), [&](size_t i) { return c[i].id; },
      [&](size_t i) { return static_cast<double>(c[i].weight); }, kept_total, u);
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& params, int32_t vocab_size) {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size = ", vocab_size, " must be > 0"));
  }
  // Comparisons are written so that NaN fails them.
  if (!(params.temperature >= 0.0f && std::isfinite(params.temperature))) {
    return OutOfRange("temperature", params.temperature, "finite and >= 0 (0 = greedy)");
  }
  if (params.top_k < 0) return OutOfRange("top_k", params.top_k, ">= 0 (0 = off)");
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return OutOfRange("top_p", params.top_p, "in (0, 1] (1 = off)");
  }
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) {
    return OutOfRange("min_p", params.min_p, "in [0, 1] (0 = off)");
  }
  if (!(params.repetition_penalty > 0.0f && std::isfinite(params.repetition_penalty))) {
    return OutOfRange("repetition_penalty", params.repetition_penalty, "finite and > 0 (1 = off)");
  }
  if (!(params.presence_penalty >= -2.0f && params.presence_penalty <= 2.0f)) {
    return OutOfRange("presence_penalty", params.presence_penalty, "in [-2, 2]");
  }
  if (!(params.frequency_penalty >= -2.0f && params.frequency_penalty <= 2.0f)) {
    return OutOfRange("frequency_penalty", params.frequency_penalty, "in [-2, 2]");
  }
  for (const auto& [token, bias] : params.logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias token id ", token, " is out of range: must be in [0, ", vocab_size, ")"));
    }
    if (!(bias >= -kMaxAbsLogitBias && bias <= kMaxAbsLogitBias)) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias for token ", token, " = ", bias,
                                                     " is out of range: must be in [-100, 100]"));
    }
  }
  std::vector<int32_t> biased_ids;
  biased_ids.reserve(params.logit_bias.size());
  for (const auto& entry : params.logit_bias) biased_ids.push_back(entry.first);
  std::sort(biased_ids.begin(), biased_ids.end());
  const auto repeated = std::adjacent_find(biased_ids.begin(), biased_ids.end());
  if (repeated != biased_ids.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("logit_bias lists token id ", *repeated, " more than once"));
  }
  if (params.num_logprobs < 0 || params.num_logprobs > kMaxLogprobs) {
    return OutOfRange("num_logprobs", params.num_logprobs, "in [0, 20]");
  }
  return absl::OkStatus();
}

Xoshiro256StarStar::Xoshiro256StarStar(uint64_t seed) {
  for (uint64_t& word : state_) word = SplitMix64(seed);
}

uint64_t Xoshiro256StarStar::Next() {
  const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = RotateLeft(state_[3], 45);
  return result;
}

double Xoshiro256StarStar::NextUniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

uint64_t DrawGlobalSeed() {
  // Start from OS entropy and the clock once; then each call mixes a fresh counter value, so
  // concurrent callers never get the same seed.
  static std::atomic<uint64_t> counter{[] {
    std::random_device device;
    const uint64_t entropy = (static_cast<uint64_t>(device()) << 32) ^ device();
    return entropy ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }()};
  uint64_t x = counter.fetch_add(1, std::memory_order_relaxed);
  return SplitMix64(x);
}

SamplerState::SamplerState(std::optional<uint64_t> seed, absl::Span<const int32_t> prompt_tokens,
                           std::unique_ptr<TokenMatcher> matcher)
    : seed_(seed.has_value() ? *seed : DrawGlobalSeed()),
      rng_(seed_),
      matcher_(std::move(matcher)) {
  output_counts_.reserve(prompt_tokens.size());
  for (int32_t token : prompt_tokens) output_counts_.try_emplace(token, 0);
}

void SamplerState::Accept(int32_t token) {
  ++output_counts_[token];
  if (matcher_ != nullptr) matcher_->Accept(token);
}

void ApplyPenaltiesAndBias(absl::Span<float> logits, const SamplingParams& params,
                           const SamplerState& state) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  float* data = logits.data();
#pragma omp simd
  for (int64_t i = 0; i < vocab; ++i) data[i] = data[i] == data[i] ? data[i] : kNegInf;
  const float repetition = params.repetition_penalty;
  const float presence = params.presence_penalty;
  const float frequency = params.frequency_penalty;
  if (repetition != 1.0f || presence != 0.0f || frequency != 0.0f) {
    for (const auto& [token, count] : state.output_counts()) {
      KVSERVE_CHECK_MSG(token >= 0 && token < vocab,
                        absl::StrCat("token ", token, " outside vocabulary of ", vocab));
      float& v = logits[token];
      v = v > 0.0f ? v / repetition : v * repetition;
      if (count > 0) {
        v -= frequency * static_cast<float>(count);
        v -= presence;
      }
    }
  }
  for (const auto& [token, bias] : params.logit_bias) {
    KVSERVE_CHECK_MSG(token >= 0 && token < vocab,
                      absl::StrCat("logit_bias token ", token, " outside vocabulary of ", vocab));
    logits[token] += bias;
  }
}

namespace {
// Structured output: every token the matcher does not allow becomes -inf. A matcher that allows
// nothing (it cannot happen for a grammar that ends in EOS) leaves the row as it is.
void ApplyTokenMask(absl::Span<float> logits, TokenMatcher& matcher) {
  std::vector<uint64_t>& allowed = ThreadScratch().allowed;
  allowed.assign((logits.size() + 63) / 64, 0);
  if (matcher.FillAllowed(absl::MakeSpan(allowed)) == 0) return;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (((allowed[i >> 6] >> (i & 63)) & 1) == 0) logits[i] = kNegInf;
  }
}
}  // namespace

SampleResult Sample(absl::Span<const float> logits, const SamplingParams& params,
                    SamplerState& state) {
  KVSERVE_CHECK_MSG(!logits.empty(), "empty logits row");
  // One draw per call, greedy or not, so the n-th token always uses the n-th draw.
  const double u = state.rng().NextUniform();

  std::vector<float>& x = ThreadScratch().logits;
  x.assign(logits.begin(), logits.end());
  if (state.matcher() != nullptr) ApplyTokenMask(absl::MakeSpan(x), *state.matcher());
  ApplyPenaltiesAndBias(absl::MakeSpan(x), params, state);

  SampleResult result;
  const float max_logit = MaxOf(x);
  const int32_t best = FirstIndexOf(x, max_logit);  // greedy: ties go to the lowest id
  if (params.temperature < kGreedyBelowTemperature || !std::isfinite(max_logit)) {
    result.token = best;
  } else if (params.top_k == 0 && params.top_p >= 1.0f && params.min_p <= 0.0f) {
    // No truncation: weights in place, then inverse CDF over the whole vocabulary.
    std::vector<float>& w = ThreadScratch().weights;
    const double total = ComputeWeights(x, max_logit, 1.0f / params.temperature, w);
    result.token = InverseCdf(
        w.size(), [](size_t i) { return static_cast<int32_t>(i); },
        [&](size_t i) { return static_cast<double>(w[i]); }, total, u);
  } else {
    result.token = SampleTruncated(x, max_logit, params, u);
  }

  const double log_normalizer = LogSumExp(logits);
  result.logprob = static_cast<float>(logits[result.token] - log_normalizer);
  if (params.num_logprobs > 0) {
    result.top_logprobs = TopLogprobs(logits, params.num_logprobs, log_normalizer);
  }
  return result;
}

void SampleBatch(absl::Span<const float> logits, int32_t vocab_size,
                 absl::Span<const SamplingParams* const> params,
                 absl::Span<SamplerState* const> states, absl::Span<SampleResult> results) {
  const int64_t rows = static_cast<int64_t>(params.size());
  KVSERVE_CHECK_MSG(vocab_size > 0, "vocab_size must be > 0");
  KVSERVE_CHECK_MSG(
      static_cast<int64_t>(logits.size()) == rows * vocab_size,
      absl::StrCat("logits has ", logits.size(), " values, expected ", rows, " x ", vocab_size));
  KVSERVE_CHECK_MSG(
      static_cast<int64_t>(states.size()) == rows && static_cast<int64_t>(results.size()) == rows,
      "params, states and results must have one entry per row");
#pragma omp parallel for schedule(dynamic, 1) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    results[r] = Sample(logits.subspan(r * vocab_size, vocab_size), *params[r], *states[r]);
  }
}

}  // namespace kvserve::engine
