#include "engine/detokenizer.h"

#include "engine/unicode.h"

namespace kvserve::engine {

std::string Detokenizer::Add(int32_t id) {
  if (tokenizer_.IsSilent(id)) return "";
  std::string piece = tokenizer_.TokenPiece(id);
  if (strip_space_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  strip_space_ = false;
  pending_ += piece;
  const size_t hold = IncompleteUtf8Suffix(pending_);
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string Detokenizer::Finish() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace kvserve::engine
