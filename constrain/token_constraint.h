// A grammar compiled for one model's vocabulary: the engine's TokenConstraint (engine/
// sampling.h) for structured output.
//
// GrammarConstraint holds the grammar, the vocabulary's trie and a cache of token masks keyed by
// the grammar state, shared by every request that uses the constraint (one JSON schema sent by
// many clients is compiled once, and each state's mask is computed once). A request's matcher
// (RequestConstraint::NewMatcher) follows its own output; its end tokens (EOS, stop_token_ids)
// are allowed exactly when the output so far is a sentence of the grammar, and are the only
// tokens allowed once nothing else can follow.
//
// Thread-safety: GrammarConstraint is thread-safe (the cache is behind a mutex, a mask is
// computed outside it); a matcher belongs to one request and one thread at a time.
#ifndef KVSERVE_CONSTRAIN_TOKEN_CONSTRAINT_H_
#define KVSERVE_CONSTRAIN_TOKEN_CONSTRAINT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "constrain/grammar.h"
#include "constrain/token_vocabulary.h"
#include "engine/sampling.h"

namespace kvserve::constrain {

class GrammarConstraint {
 public:
  // InvalidArgument when no token of the vocabulary can begin a
  // sentence of the grammar and the empty string is not one (the request could never produce
  // anything the grammar accepts).
  static absl::StatusOr<std::shared_ptr<const GrammarConstraint>> Create(
      std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocabulary);

  const std::shared_ptr<const Grammar>& grammar() const { return grammar_; }
  const TokenVocabulary& vocabulary() const { return *vocabulary_; }

  // The mask of `matcher`'s state (bits of tokens with bytes; no end tokens), from the cache or
  // computed and cached. At most kMaxCacheBytes of masks are kept; past it the cache starts
  // over.
  std::shared_ptr<const std::vector<uint64_t>> MaskFor(const GrammarMatcher& matcher) const;

  int64_t cache_hits() const { return hits_.load(std::memory_order_relaxed); }
  int64_t cache_misses() const { return misses_.load(std::memory_order_relaxed); }

  static constexpr size_t kMaxCacheBytes = 8 << 20;

 private:
  GrammarConstraint(std::shared_ptr<const Grammar> grammar,
                    std::shared_ptr<const TokenVocabulary> vocabulary)
      : grammar_(std::move(grammar)), vocabulary_(std::move(vocabulary)) {}

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, std::shared_ptr<const std::vector<uint64_t>>> cache_
      ABSL_GUARDED_BY(mu_);
  mutable size_t cache_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  mutable std::atomic<int64_t> hits_{0};
  mutable std::atomic<int64_t> misses_{0};
};

// One request's use of a compiled constraint: the constraint and the tokens that end the
// request. Plain immutable data; the engine calls NewMatcher once per request.
class RequestConstraint : public engine::TokenConstraint {
 public:
  RequestConstraint(std::shared_ptr<const GrammarConstraint> compiled,
                    absl::flat_hash_set<int32_t> end_tokens)
      : compiled_(std::move(compiled)),
        end_tokens_(std::make_shared<const absl::flat_hash_set<int32_t>>(std::move(end_tokens))) {}

  std::unique_ptr<engine::TokenMatcher> NewMatcher() const override;

  const GrammarConstraint& compiled() const { return *compiled_; }

 private:
  std::shared_ptr<const GrammarConstraint> compiled_;
  std::shared_ptr<const absl::flat_hash_set<int32_t>> end_tokens_;  // shared with the matchers
};

}  // namespace kvserve::constrain

#endif  // KVSERVE_CONSTRAIN_TOKEN_CONSTRAINT_H_
