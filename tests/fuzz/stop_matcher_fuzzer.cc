// Fuzzes StopStringMatcher over streamed text against a one-shot oracle written here: on the
// whole text, the stop string whose first occurrence ends earliest (ties: the one starting
// first) ends the output, which is the text before it (or through it, with
// include_stop_str_in_output); without one the whole text is shown after Flush. The streamed
// matcher must show exactly that, whatever the deltas, hold back less than the longest stop
// string, and return valid UTF-8 chunks.
//
// Input: byte 0 = include flag (bit 0) and the number of stop strings (1 + bits 1..4); then
// '\0'-separated parts: that many stop strings, then the deltas. Parts are made valid UTF-8
// first (the server's stop strings and deltas are), stop strings cut to kMaxStopStringBytes.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "base/utf8.h"
#include "server/frontend/request_builder.h"
#include "server/frontend/stop_matcher.h"
#include "tests/fuzz/fuzz_support.h"

namespace kvserve::fuzz {
namespace {

struct Expected {
  std::string shown;
  std::optional<std::string> matched;
};

Expected Oracle(const std::vector<std::string>& stops, const std::string& text, bool include) {
  size_t best_start = 0, best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& stop : stops) {
    if (stop.empty()) continue;
    const size_t start = text.find(stop);
    if (start == std::string::npos) continue;
    const size_t end = start + stop.size();
    if (best == nullptr || end < best_end || (end == best_end && start < best_start)) {
      best = &stop;
      best_start = start;
      best_end = end;
    }
  }
  if (best == nullptr) return {text, std::nullopt};
  return {text.substr(0, include ? best_end : best_start), *best};
}

}  // namespace
}  // namespace kvserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  if (size == 0) return 0;
  const bool include = (data[0] & 1) != 0;
  const size_t num_stops = 1 + ((data[0] >> 1) % server::kMaxStopStrings);
  std::vector<std::string> parts;
  absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  while (true) {
    const size_t nul = rest.find('\0');
    parts.push_back(base::SanitizeUtf8(rest.substr(0, nul)));
    if (nul == absl::string_view::npos) break;
    rest.remove_prefix(nul + 1);
  }
  std::vector<std::string> stops;
  size_t max_stop = 0;
  size_t i = 0;
  for (; i < parts.size() && stops.size() < num_stops; ++i) {
    std::string stop = parts[i];
    // Cut at a character boundary: the server refuses longer ones.
    while (stop.size() > static_cast<size_t>(server::kMaxStopStringBytes) ||
           base::FindInvalidUtf8(stop) != std::string::npos) {
      stop.pop_back();
    }
    max_stop = std::max(max_stop, stop.size());
    stops.push_back(std::move(stop));
  }
  std::string text;
  for (size_t j = i; j < parts.size(); ++j) text += parts[j];
  const fuzz::Expected expected = fuzz::Oracle(stops, text, include);

  server::StopStringMatcher matcher(stops, include);
  std::string shown;
  std::optional<std::string> matched;
  for (size_t j = i; j < parts.size(); ++j) {
    server::StopStringMatcher::Result r = matcher.Add(parts[j]);
    fuzz::FuzzCheck(base::FindInvalidUtf8(r.text) == std::string::npos,
                    "the matcher showed a chunk that is not valid UTF-8");
    if (matched.has_value()) {
      fuzz::FuzzCheck(r.text.empty() && !r.matched.has_value(),
                      "the matcher went on after a match");
      continue;
    }
    shown += r.text;
    matched = r.matched;
    if (!matched.has_value()) {
      fuzz::FuzzCheck(max_stop == 0 || matcher.held_bytes() < max_stop,
                      "the matcher holds back a whole stop string's length or more");
    }
  }
  if (!matched.has_value()) shown += matcher.Flush();
  fuzz::FuzzCheck(matched == expected.matched, "the matcher matched another stop string");
  fuzz::FuzzCheck(shown == expected.shown, "the matcher showed other text than the oracle");
  return 0;
}
