// Token sampling: turns one row of logits into the next token of a request, with that request's
// sampling parameters and its own random stream.
//
// Pipeline for one row (logits of the whole vocabulary, in token-id order):
//   0. Structured output (SamplingParams::constraint): tokens the request's TokenMatcher does
//      not allow get -inf, on the scratch copy, before everything below.
//   1. Penalties, on a scratch copy (the caller's logits are never modified):
//        repetition (tokens seen in the prompt OR the generated output):
//            logit > 0 ? logit / repetition_penalty : logit * repetition_penalty
//        frequency (generated output only): logit -= frequency_penalty * count(token)
//        presence  (generated output only): logit -= presence_penalty * (count(token) > 0)
//      then logit_bias[token] is added. (Same formulas as Hugging Face / vLLM; the bias comes
//      after the penalties, so a repetition penalty never scales a bias.) NaN logits are treated
//      as -inf.
//   2. temperature < 1e-5 (0 in practice): greedy, the arg-max of the penalized logits; ties
//      go to the LOWEST token id. Truncation would not change this choice, so it is skipped.
//      (Below 1e-5, 1 / temperature may overflow; vLLM uses the same cut-off.)
//   3. Otherwise, with p = softmax(penalized_logit / temperature):
//        top-k  (top_k > 0): keep the k most probable tokens;
//        top-p  (top_p < 1): of those, renormalized, keep the smallest most-probable-first
//               prefix whose mass is >= top_p (at least one token);
//        min-p  (min_p > 0): of those, drop tokens with p < min_p * max(p);
//      Ranking ties (equal logits) are broken by lower token id, so the kept set is
//      deterministic. The kept tokens are renormalized and one uniform u in [0, 1) from the
//      request's generator picks, by inverse CDF over the kept tokens in ascending id order,
//      the smallest id whose cumulative probability exceeds u. The result thus depends only on
//      the logits, the parameters and u, not on how the kept set was found.
//   If every penalized logit is -inf (or NaN), or the largest is +inf, sampling falls back to
//   the greedy choice. Probabilities are computed in float with a vectorized exp (relative
//   error ~1e-7) and summed in double; a token less likely than exp(-87) ~ 1.6e-38 times the
//   best one is never drawn.
//
// Cost, per row of vocabulary V: a handful of vectorized passes over V, plus for top-k a
// one-pass heap selection and for top-p a mass-guided quickselect (no full sort: tokens too
// light to matter are skipped first, then the boundary is found by halving). Logprobs add one
// exp pass, and a heap selection when num_logprobs > 0.
//
// Logprobs: like vLLM's default, they are the log-softmax of the RAW logits given to Sample
// (before penalties, bias, temperature and truncation): they describe the model, not the
// sampler. `logprob` (of the chosen token) is always filled; `top_logprobs` holds the
// num_logprobs most likely tokens under the raw logits, descending (ties: lower id first).
//
// Random streams: each request's SamplerState owns a xoshiro256** generator seeded from the
// request's 64-bit seed through splitmix64 (the generators' published reference algorithms). A
// seeded request therefore gets the same tokens whatever else is in the batch and whichever
// thread samples it. Each Sample call draws exactly one 64-bit value, greedy or not, so the
// n-th generated token always uses the n-th draw. Unseeded requests take a seed from a global,
// thread-safe source (random_device + counter), readable through SamplerState::seed() so a run
// can be replayed.
//
// Thread-safety: Sample and SampleBatch are reentrant (scratch buffers are thread-local); one
// SamplerState must not be used by two threads at once. SamplingParams is plain data.
#ifndef KVSERVE_ENGINE_SAMPLING_H_
#define KVSERVE_ENGINE_SAMPLING_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace kvserve::engine {

inline constexpr int32_t kMaxLogprobs = 20;

// Structured output: which tokens may come next, from a request's own automaton (a grammar, a
// JSON schema; constrain/ implements it). The sampler asks before every token and sets the
// logits of every other token to -inf, before penalties, bias, temperature and truncation;
// logprobs stay those of the raw logits. One matcher per request, used by one thread at a time;
// a TokenConstraint is immutable and shared by any number of requests and threads.
class TokenMatcher {
 public:
  virtual ~TokenMatcher() = default;
  // Sets bit t (allowed[t / 64] >> (t % 64) & 1) for every token t allowed next, clearing the
  // rest; `allowed` has (vocab_size + 63) / 64 words. Returns how many tokens are allowed; at
  // 0 the sampler ignores the mask.
  virtual int64_t FillAllowed(absl::Span<uint64_t> allowed) = 0;
  // The request's next token is `token` (it was allowed).
  virtual void Accept(int32_t token) = 0;
};

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // The matcher of one request, at the start of its output.
  virtual std::unique_ptr<TokenMatcher> NewMatcher() const = 0;
};
inline constexpr float kMaxAbsLogitBias = 100.0f;  // the OpenAI API's range
inline constexpr float kGreedyBelowTemperature = 1e-5f;

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::optional<uint64_t> seed;                       // nullopt: drawn from the global source
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, added to its logit)
  int32_t num_logprobs = 0;                           // top alternatives to report, <= 20
  std::shared_ptr<const TokenConstraint> constraint;  // nullptr: every token may come
};

// InvalidArgument naming the field and its allowed range if any field is out of range:
// temperature finite and >= 0; top_k >= 0; top_p in (0, 1]; min_p in [0, 1];
// repetition_penalty finite and > 0; presence/frequency penalties in [-2, 2]; logit_bias ids in
// [0, vocab_size), each id at most once, biases in [-100, 100]; num_logprobs in [0, 20].
// Also InvalidArgument if vocab_size <= 0.
absl::Status ValidateSamplingParams(const SamplingParams& params, int32_t vocab_size);

// xoshiro256** (Blackman & Vigna), seeded by expanding a 64-bit seed with splitmix64.
// Plain value type; not thread-safe.
class Xoshiro256StarStar {
 public:
  explicit Xoshiro256StarStar(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, 1) with 53 random bits: (Next() >> 11) * 2^-53.
  double NextUniform();

 private:
  std::array<uint64_t, 4> state_;
};

// A fresh seed from the process-wide source (thread-safe; distinct across calls).
uint64_t DrawGlobalSeed();

// Per-request sampling state: the random stream and the token history the penalties need.
// Owned by the request (it survives preemption: recomputing the KV cache does not resample).
// Not thread-safe; Sample only touches the state it is given.
class SamplerState {
 public:
  // `seed`: the request's seed, or nullopt to draw one with DrawGlobalSeed().
  // `prompt_tokens`: the prompt, for the repetition penalty (copied into a set).
  // `matcher`: the request's structured-output matcher, or nullptr.
  SamplerState(std::optional<uint64_t> seed, absl::Span<const int32_t> prompt_tokens,
               std::unique_ptr<TokenMatcher> matcher = nullptr);

  // Records a generated token (for the penalties and the matcher). Call once per token appended
  // to the output.
  void Accept(int32_t token);

  TokenMatcher* matcher() const { return matcher_.get(); }

  uint64_t seed() const { return seed_; }
  Xoshiro256StarStar& rng() { return rng_; }

  // Every token of the prompt or the output, mapped to its count in the OUTPUT (0 for tokens
  // seen only in the prompt).
  const absl::flat_hash_map<int32_t, int32_t>& output_counts() const { return output_counts_; }

 private:
  uint64_t seed_;
  Xoshiro256StarStar rng_;
  absl::flat_hash_map<int32_t, int32_t> output_counts_;
  std::unique_ptr<TokenMatcher> matcher_;
};

struct SampleResult {
  int32_t token = 0;
  float logprob = 0.0f;                                 // log-softmax of the raw logits at `token`
  std::vector<std::pair<int32_t, float>> top_logprobs;  // (token, logprob), descending
};

// Step 1 of the pipeline above, in place: repetition, frequency and presence penalties, then
// logit_bias, and NaN -> -inf. Exposed for tests and for callers that want processed logits.
// `logits` is one row of the whole vocabulary; params must have passed ValidateSamplingParams
// for logits.size(), and every token the state has seen must be < logits.size() (CHECKed).
void ApplyPenaltiesAndBias(absl::Span<float> logits, const SamplingParams& params,
                           const SamplerState& state);

// Samples one token from one row of logits (size = vocabulary) as described at the top.
// Draws one value from state.rng(); does not call state.Accept (the caller does, once the token
// is really appended). `params` must have passed ValidateSamplingParams for logits.size().
SampleResult Sample(absl::Span<const float> logits, const SamplingParams& params,
                    SamplerState& state);

// Samples every row of `logits` ([rows, vocab_size] row-major, rows = params.size()) in
// parallel with OpenMP; row r uses params[r] and *states[r] and writes results[r]. The states
// must be distinct objects. Each row's result is exactly Sample(row, params[r], *states[r]):
// it does not depend on the other rows or on the thread count.
void SampleBatch(absl::Span<const float> logits, int32_t vocab_size,
                 absl::Span<const SamplingParams* const> params,
                 absl::Span<SamplerState* const> states, absl::Span<SampleResult> results);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_SAMPLING_H_
