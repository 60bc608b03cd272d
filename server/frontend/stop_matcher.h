// StopStringMatcher: finds stop strings in streamed text and decides what text may be shown.
//
// Text arrives in deltas (one per token, already valid UTF-8). The matcher holds back the
// longest tail of the unshown text that is a proper prefix of some stop string, because the
// next delta may complete it; everything before that tail is safe to show. A stop string may
// thus be split across any number of deltas, start at the very beginning of the output, or
// overlap another stop string.
//
// When several stop strings occur, the one that is complete earliest in the text wins (ties:
// the one starting first, i.e. the longer one): generation stops as soon as any stop string has
// appeared. With include_stop_str_in_output the text up to and including it is shown, otherwise
// only the text before it — no byte of an excluded stop string is ever returned. After a match
// the matcher ignores further input.
//
// Because stop strings are valid UTF-8, the held tail starts at a character boundary, so the
// shown text stays valid UTF-8.
//
// Ownership: plain value type. Thread-safety: none (one per request).
#ifndef KVSERVE_SERVER_FRONTEND_STOP_MATCHER_H_
#define KVSERVE_SERVER_FRONTEND_STOP_MATCHER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kvserve::server {

class StopStringMatcher {
 public:
  // Empty strings in `stops` are ignored (the server rejects them earlier).
  StopStringMatcher(std::vector<std::string> stops, bool include_stop_str_in_output);

  struct Result {
    std::string text;                    // may be shown now
    std::optional<std::string> matched;  // the stop string that ended the text
  };
  // Feeds the next delta.
  Result Add(absl::string_view delta);
  // The stream ended without a match: the held-back text is shown after all.
  std::string Flush();

  bool matched() const { return matched_; }
  size_t held_bytes() const { return held_.size(); }

 private:
  std::vector<std::string> stops_;
  bool include_;
  size_t max_stop_length_ = 0;
  std::string held_;
  bool matched_ = false;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_STOP_MATCHER_H_
