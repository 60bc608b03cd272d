#include "server/frontend/stop_matcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"

namespace kvserve::server {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops,
                                     bool include_stop_str_in_output)
    : include_(include_stop_str_in_output) {
  for (std::string& s : stops) {
    if (s.empty()) continue;
    max_stop_length_ = std::max(max_stop_length_, s.size());
    stops_.push_back(std::move(s));
  }
}

StopStringMatcher::Result StopStringMatcher::Add(absl::string_view delta) {
  Result result;
  if (matched_) return result;
  held_.append(delta.data(), delta.size());
  if (stops_.empty()) {
    result.text = std::move(held_);
    held_.clear();
    return result;
  }
  // Earliest-completed occurrence of any stop string. Everything before held_ was checked on
  // earlier calls, and held_ holds every tail that could still begin a stop string.
  size_t best_end = std::string::npos, best_start = 0;
  const std::string* best = nullptr;
  for (const std::string& stop : stops_) {
    const size_t pos = held_.find(stop);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stop.size();
    if (best == nullptr || end < best_end || (end == best_end && pos < best_start)) {
      best = &stop;
      best_end = end;
      best_start = pos;
    }
  }
  if (best != nullptr) {
    matched_ = true;
    result.text = held_.substr(0, include_ ? best_end : best_start);
    result.matched = *best;
    held_.clear();
    return result;
  }
  // Hold the longest tail that is a proper prefix of a stop string.
  size_t hold = std::min(held_.size(), max_stop_length_ - 1);
  for (; hold > 0; --hold) {
    const absl::string_view tail = absl::string_view(held_).substr(held_.size() - hold);
    bool is_prefix = false;
    for (const std::string& stop : stops_) {
      if (stop.size() > hold && absl::StartsWith(stop, tail)) {
        is_prefix = true;
        break;
      }
    }
    if (is_prefix) break;
  }
  result.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return result;
}

std::string StopStringMatcher::Flush() {
  std::string out = std::move(held_);
  held_.clear();
  return matched_ ? std::string() : out;
}

}  // namespace kvserve::server
