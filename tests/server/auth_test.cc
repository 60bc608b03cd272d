#include "server/frontend/auth.h"

#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

TEST(BearerTest, MatchesOnlyTheExactKey) {
  EXPECT_TRUE(BearerTokenMatches("Bearer sekret", "sekret"));
  EXPECT_TRUE(BearerTokenMatches("bearer  sekret ", "sekret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer sekret2", "sekret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer sekre", "sekret"));
  EXPECT_FALSE(BearerTokenMatches("sekret", "sekret"));
  EXPECT_FALSE(BearerTokenMatches("", "sekret"));
  EXPECT_FALSE(BearerTokenMatches("Basic sekret", "sekret"));
}

}  // namespace
}  // namespace kvserve::server
