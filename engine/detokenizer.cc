#include "engine/detokenizer.h"

namespace kvserve::engine {

std::string Detokenizer::Add(int32_t id) {
  if (tokenizer_.IsSilent(id)) return "";
  std::string piece = tokenizer_.TokenPiece(id);
  if (strip_space_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  strip_space_ = false;
  return utf8_.Add(piece);
}

std::string Detokenizer::Finish() { return utf8_.Flush(); }

}  // namespace kvserve::engine
