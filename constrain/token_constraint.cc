#include "constrain/token_constraint.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kvserve::constrain {
namespace {

class GrammarTokenMatcher : public engine::TokenMatcher {
 public:
  GrammarTokenMatcher(std::shared_ptr<const GrammarConstraint> compiled,
                      std::shared_ptr<const absl::flat_hash_set<int32_t>> end_tokens)
      : compiled_(std::move(compiled)),
        end_tokens_(std::move(end_tokens)),
        matcher_(compiled_->grammar()) {}

  int64_t FillAllowed(absl::Span<uint64_t> allowed) override {
    int64_t count = 0;
    if (!dead_) {
      std::shared_ptr<const std::vector<uint64_t>> mask = compiled_->MaskFor(matcher_);
      for (size_t w = 0; w < allowed.size() && w < mask->size(); ++w) {
        allowed[w] = (*mask)[w];
        count += __builtin_popcountll(allowed[w]);
      }
    } else {
      std::fill(allowed.begin(), allowed.end(), 0);
    }
    // End tokens: where the output is complete, or where nothing else can follow (a grammar
    // whose continuation no token spells: end rather than emit what it refuses).
    if (count == 0 || matcher_.IsAccepting()) {
      for (int32_t id : *end_tokens_) {
        if (id < 0 || static_cast<size_t>(id >> 6) >= allowed.size()) continue;
        const uint64_t bit = uint64_t{1} << (id & 63);
        if ((allowed[id >> 6] & bit) == 0) ++count;
        allowed[id >> 6] |= bit;
      }
    }
    return count;
  }

  void Accept(int32_t token) override {
    if (dead_ || end_tokens_->contains(token)) return;
    const TokenVocabulary& vocabulary = compiled_->vocabulary();
    if (token < 0 || token >= vocabulary.size() || !matcher_.AcceptBytes(vocabulary.piece(token))) {
      dead_ = true;  // not allowed (a mask was ignored): only end tokens from here on
    }
  }

 private:
  std::shared_ptr<const GrammarConstraint> compiled_;
  std::shared_ptr<const absl::flat_hash_set<int32_t>> end_tokens_;
  GrammarMatcher matcher_;
  bool dead_ = false;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const GrammarConstraint>> GrammarConstraint::Create(
    std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocabulary) {
  std::shared_ptr<const GrammarConstraint> compiled(
      new GrammarConstraint(std::move(grammar), std::move(vocabulary)));
  GrammarMatcher start(compiled->grammar_);
  if (start.overflowed()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the grammar is too ambiguous: its start has more than ", GrammarMatcher::kMaxStacks,
        " parses or takes more than ", GrammarMatcher::kMaxExpandSteps, " steps to expand"));
  }
  std::shared_ptr<const std::vector<uint64_t>> mask = compiled->MaskFor(start);
  bool any = false;
  for (uint64_t word : *mask) any = any || word != 0;
  if (!any && !start.IsAccepting()) {
    return absl::InvalidArgumentError(
        "no token of the model's vocabulary can begin a string the constraint accepts");
  }
  return compiled;
}

std::shared_ptr<const std::vector<uint64_t>> GrammarConstraint::MaskFor(
    const GrammarMatcher& matcher) const {
  const std::string key = matcher.StateKey();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      return it->second;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  auto mask = std::make_shared<std::vector<uint64_t>>((vocabulary_->size() + 63) / 64);
  vocabulary_->FillAllowed(matcher, absl::MakeSpan(*mask));
  const size_t bytes = mask->size() * sizeof(uint64_t) + key.size();
  absl::MutexLock lock(&mu_);
  if (cache_bytes_ + bytes > kMaxCacheBytes) {
    cache_.clear();
    cache_bytes_ = 0;
  }
  if (cache_.try_emplace(key, mask).second) cache_bytes_ += bytes;
  return mask;
}

std::unique_ptr<engine::TokenMatcher> RequestConstraint::NewMatcher() const {
  return std::make_unique<GrammarTokenMatcher>(compiled_, end_tokens_);
}

}  // namespace kvserve::constrain
