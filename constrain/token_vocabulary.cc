#include "constrain/token_vocabulary.h"

#include <algorithm>
#include <deque>
#include <numeric>
#include <utility>

namespace kvserve::constrain {

TokenVocabulary::TokenVocabulary(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
  std::vector<int32_t> order;
  for (int32_t id = 0; id < size(); ++id) {
    if (!pieces_[id].empty()) order.push_back(id);
  }
  num_nonempty_ = static_cast<int64_t>(order.size());
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return pieces_[a] != pieces_[b] ? pieces_[a] < pieces_[b] : a < b;
  });
  // Breadth first over ranges of the sorted tokens that share a prefix of length `depth`: the
  // ones that end there come first (a prefix sorts before its extensions), the rest group by
  // their next byte into contiguous children.
  struct Pending {
    int32_t node;
    size_t lo, hi;
    size_t depth;
  };
  nodes_.emplace_back();
  std::deque<Pending> queue{{0, 0, order.size(), 0}};
  while (!queue.empty()) {
    const Pending p = queue.front();
    queue.pop_front();
    size_t i = p.lo;
    nodes_[p.node].first_token = static_cast<int32_t>(tokens_.size());
    while (i < p.hi && pieces_[order[i]].size() == p.depth) tokens_.push_back(order[i++]);
    nodes_[p.node].num_tokens = static_cast<int32_t>(tokens_.size()) - nodes_[p.node].first_token;
    nodes_[p.node].first_child = static_cast<int32_t>(nodes_.size());
    while (i < p.hi) {
      const uint8_t byte = static_cast<uint8_t>(pieces_[order[i]][p.depth]);
      size_t j = i;
      while (j < p.hi && static_cast<uint8_t>(pieces_[order[j]][p.depth]) == byte) ++j;
      Node child;
      child.byte = byte;
      nodes_.push_back(child);
      queue.push_back({static_cast<int32_t>(nodes_.size() - 1), i, j, p.depth + 1});
      i = j;
    }
    nodes_[p.node].num_children = static_cast<int32_t>(nodes_.size()) - nodes_[p.node].first_child;
  }
}

int64_t TokenVocabulary::FillAllowed(const GrammarMatcher& matcher,
                                     absl::Span<uint64_t> allowed) const {
  std::fill(allowed.begin(), allowed.end(), 0);
  if (matcher.stacks().empty()) return 0;
  // Depth-first with an explicit stack: levels[d] holds the grammar stacks after the first d
  // bytes of the current path, and reuses its memory from one path to the next.
  struct Frame {
    int32_t node;
    int32_t next_child;      // index among the node's children
    std::bitset<256> bytes;  // bytes the stacks at this depth accept
  };
  std::vector<std::vector<GrammarMatcher::Stack>> levels(1, matcher.stacks());
  std::vector<Frame> path{{0, 0, matcher.NextBytes()}};
  int64_t count = 0;
  const Grammar& grammar = matcher.grammar();
  const size_t first_step = GrammarMatcher::ThreadExpandSteps();
  while (!path.empty()) {
    // A grammar whose states are expensive to expand (hostile, or very ambiguous) gets a mask
    // of the tokens found so far: all of them valid, only not all the valid ones.
    if (GrammarMatcher::ThreadExpandSteps() - first_step > kMaxMaskSteps) break;
    Frame& frame = path.back();
    const Node& node = nodes_[frame.node];
    if (frame.next_child == node.num_children) {
      path.pop_back();
      continue;
    }
    const int32_t child_index = node.first_child + frame.next_child++;
    const Node& child = nodes_[child_index];
    if (!frame.bytes.test(child.byte)) continue;
    const size_t depth = path.size();
    if (levels.size() <= depth) levels.emplace_back();
    matcher.Advance(levels[depth - 1], child.byte, &levels[depth], /*dedupe=*/false);
    if (levels[depth].empty()) continue;
    for (int32_t t = 0; t < child.num_tokens; ++t) {
      const int32_t id = tokens_[child.first_token + t];
      allowed[id >> 6] |= uint64_t{1} << (id & 63);
      ++count;
    }
    if (child.num_children == 0) continue;
    std::bitset<256> next;
    for (const GrammarMatcher::Stack& s : levels[depth]) {
      if (!s.empty()) next |= grammar.byte_sets()[grammar.elements()[s.back()].byte_set];
    }
    if (next.any()) path.push_back({child_index, 0, next});
  }
  return count;
}

}  // namespace kvserve::constrain
