#include "server/frontend/stop_matcher.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

struct Shown {
  std::string text;     // everything shown, in order
  std::string matched;  // "" when nothing matched
};

// Feeds the deltas one by one, then flushes (as the server does at the end of the stream).
Shown Feed(const std::vector<std::string>& stops, bool include,
           const std::vector<std::string>& deltas) {
  StopStringMatcher m(stops, include);
  Shown run;
  for (const std::string& d : deltas) {
    StopStringMatcher::Result r = m.Add(d);
    run.text += r.text;
    if (r.matched) run.matched = *r.matched;
  }
  run.text += m.Flush();
  return run;
}

TEST(StopStringMatcherTest, NoStopsPassesEverythingThrough) {
  StopStringMatcher m({}, false);
  EXPECT_EQ(m.Add("hello ").text, "hello ");
  EXPECT_EQ(m.Add("world").text, "world");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringMatcherTest, HoldsBackAPossibleStartThenReleasesIt) {
  StopStringMatcher m({"STOP"}, false);
  EXPECT_EQ(m.Add("abc ST").text, "abc ");
  EXPECT_EQ(m.held_bytes(), 2u);
  EXPECT_EQ(m.Add("A").text, "STA");  // "STA" cannot begin "STOP"
  EXPECT_FALSE(m.matched());
}

TEST(StopStringMatcherTest, StopSplitAcrossTokensIsExcluded) {
  const Shown run = Feed({"STOP"}, false, {"abc S", "T", "O", "P tail"});
  EXPECT_EQ(run.text, "abc ");
  EXPECT_EQ(run.matched, "STOP");
}

TEST(StopStringMatcherTest, StopSplitAcrossTokensIsIncludedWhenAsked) {
  const Shown run = Feed({"STOP"}, true, {"abc S", "T", "O", "P tail"});
  EXPECT_EQ(run.text, "abc STOP");
  EXPECT_EQ(run.matched, "STOP");
}

TEST(StopStringMatcherTest, StopAtTheVeryStart) {
  EXPECT_EQ(Feed({"ST"}, false, {"S", "T", "more"}).text, "");
  EXPECT_EQ(Feed({"ST"}, true, {"S", "T", "more"}).text, "ST");
  EXPECT_EQ(Feed({"ST"}, false, {"STmore"}).text, "");
}

TEST(StopStringMatcherTest, EarliestCompletedStopWinsAmongOverlappingOnes) {
  // "abc" is complete at byte 3 of "abcd", "bcd" only at byte 4.
  Shown run = Feed({"bcd", "abc"}, false, {"xab", "cd"});
  EXPECT_EQ(run.text, "x");
  EXPECT_EQ(run.matched, "abc");
  run = Feed({"bcd", "abc"}, true, {"xab", "cd"});
  EXPECT_EQ(run.text, "xabc");
  // Same end: the longer (earlier-starting) one.
  run = Feed({"bc", "abc"}, false, {"xabc"});
  EXPECT_EQ(run.text, "x");
  EXPECT_EQ(run.matched, "abc");
}

TEST(StopStringMatcherTest, SelfOverlappingStop) {
  // "aab" inside "aaab": the first 'a' is shown, the stop starts at the second.
  const Shown run = Feed({"aab"}, false, {"a", "a", "a", "b"});
  EXPECT_EQ(run.text, "a");
  EXPECT_EQ(run.matched, "aab");
}

TEST(StopStringMatcherTest, HeldTextIsShownWhenTheStreamEndsWithoutMatch) {
  const Shown run = Feed({"STOP"}, false, {"abc ", "ST"});
  EXPECT_EQ(run.text, "abc ST");
  EXPECT_EQ(run.matched, "");
}

TEST(StopStringMatcherTest, IgnoresInputAfterAMatch) {
  StopStringMatcher m({"x"}, false);
  EXPECT_EQ(m.Add("ax").text, "a");
  EXPECT_EQ(m.Add("bbb").text, "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringMatcherTest, MultiByteStopKeepsCharactersWhole) {
  StopStringMatcher m({"\xC3\xA9!"}, false);  // "é!"
  StopStringMatcher::Result r = m.Add("caf\xC3\xA9");
  EXPECT_EQ(r.text, "caf");
  r = m.Add("?");
  EXPECT_EQ(r.text, "\xC3\xA9?");
}

// Against an oracle over the whole text: the shown text is the text up to the earliest-ending
// stop occurrence (minus or plus the stop), whatever the split into deltas, and every
// intermediate shown prefix is a prefix of that.
TEST(StopStringMatcherTest, RandomSplitsMatchTheWholeTextOracle) {
  std::mt19937 rng(7);
  const std::string alphabet = "abc";
  auto random_string = [&](int min_len, int max_len) {
    std::string s(std::uniform_int_distribution<int>(min_len, max_len)(rng), ' ');
    for (char& c : s) c = alphabet[std::uniform_int_distribution<int>(0, 2)(rng)];
    return s;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::string> stops;
    const int num_stops = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int i = 0; i < num_stops; ++i) stops.push_back(random_string(1, 4));
    const std::string text = random_string(0, 20);
    const bool include = trial % 2 == 1;

    // Oracle: scan end positions left to right; the first end at which some stop ends wins,
    // and among those the longest stop.
    std::string expected = text, expected_stop;
    bool found = false;
    for (size_t end = 1; end <= text.size() && !found; ++end) {
      for (const std::string& s : stops) {
        if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0 &&
            (!found || s.size() > expected_stop.size())) {
          found = true;
          expected_stop = s;
          expected = text.substr(0, include ? end : end - s.size());
        }
      }
    }

    std::vector<std::string> deltas;
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::uniform_int_distribution<size_t>(1, 4)(rng);
      deltas.push_back(text.substr(i, n));
      i += n;
    }
    StopStringMatcher m(stops, include);
    std::string shown;
    for (const std::string& d : deltas) {
      StopStringMatcher::Result r = m.Add(d);
      shown += r.text;
      ASSERT_EQ(expected.compare(0, shown.size(), shown), 0)
          << "shown '" << shown << "' is not a prefix of '" << expected << "' (text '" << text
          << "')";
      if (r.matched) EXPECT_EQ(*r.matched, expected_stop);
    }
    shown += m.Flush();
    EXPECT_EQ(shown, expected) << "text '" << text << "' stops[0] '" << stops[0] << "'";
    EXPECT_EQ(m.matched(), found);
  }
}

}  // namespace
}  // namespace kvserve::server
