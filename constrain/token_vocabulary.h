// A model's vocabulary as a trie of token byte strings, and the token mask of a grammar state:
// the tokens whose bytes the grammar accepts from that state. The mask walks the trie depth
// first, advancing the grammar's stacks once per trie edge, so tokens that share a prefix share
// the work, and a subtree whose first byte the grammar refuses is skipped whole (XGrammar and
// llama.cpp's grammar sampler do the same walk; this one is written anew).
//
// Ownership and threads: immutable after construction; shared by every constraint compiled for
// the model, used from any number of threads.
#ifndef KVSERVE_CONSTRAIN_TOKEN_VOCABULARY_H_
#define KVSERVE_CONSTRAIN_TOKEN_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "constrain/grammar.h"

namespace kvserve::constrain {

class TokenVocabulary {
 public:
  // pieces[id]: the bytes token `id` stands for (TextCodec::TokenPiece). Tokens with no bytes
  // (control tokens, EOS) are never in a mask; the caller adds end tokens itself.
  explicit TokenVocabulary(std::vector<std::string> pieces);

  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  // Tokens with at least one byte.
  int64_t num_nonempty() const { return num_nonempty_; }

  // Sets the bit of every token whose bytes `matcher` accepts from its state (and clears the
  // rest); `allowed` has (size() + 63) / 64 words. Returns the number of bits set. Cost: one
  // grammar step per trie node visited.
  // A walk stops after kMaxMaskSteps grammar expansion steps (tens of milliseconds), leaving the
  // tokens found so far: every one is allowed, some allowed ones may be missing.
  int64_t FillAllowed(const GrammarMatcher& matcher, absl::Span<uint64_t> allowed) const;

  static constexpr size_t kMaxMaskSteps = 1 << 22;

 private:
  struct Node {
    int32_t first_child = 0;  // children are contiguous in nodes_, sorted by byte
    int32_t num_children = 0;
    int32_t first_token = 0;  // tokens whose bytes end at this node, in tokens_
    int32_t num_tokens = 0;
    uint8_t byte = 0;  // the edge into this node
  };
  std::vector<std::string> pieces_;
  std::vector<Node> nodes_;  // nodes_[0] is the root (the empty prefix)
  std::vector<int32_t> tokens_;
  int64_t num_nonempty_ = 0;
};

}  // namespace kvserve::constrain

#endif  // KVSERVE_CONSTRAIN_TOKEN_VOCABULARY_H_
