#include "server/models/text_codec.h"

#include <string>

#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(ByteLevelCodecTest, AnyBytesRoundTrip) {
  ByteLevelCodec codec;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  absl::StatusOr<std::vector<int32_t>> ids = codec.Encode(all, /*add_special_tokens=*/true);
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 257u);
  EXPECT_EQ((*ids)[0], 256);  // BOS
  EXPECT_EQ((*ids)[1], 0);
  EXPECT_EQ((*ids)[256], 255);
  EXPECT_EQ(codec.Decode(*ids), all);  // BOS decodes to nothing
  EXPECT_EQ(codec.TokenPiece(257), "");
  EXPECT_EQ(codec.eos_ids(), absl::flat_hash_set<int32_t>({257}));
}

TEST(IncrementalDetokenizerTest, HoldsIncompleteCharactersBack) {
  IncrementalDetokenizer d;
  EXPECT_EQ(d.Add("caf\xC3"), "caf");
  EXPECT_EQ(d.Add("\xA9"), "\xC3\xA9");
  // U+1F600 (F0 9F 98 80) one byte at a time.
  EXPECT_EQ(d.Add("\xF0"), "");
  EXPECT_EQ(d.Add("\x9F"), "");
  EXPECT_EQ(d.Add("\x98"), "");
  EXPECT_EQ(d.Add("\x80"), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(d.has_pending());
}

TEST(IncrementalDetokenizerTest, InvalidBytesBecomeReplacementCharacters) {
  IncrementalDetokenizer d;
  EXPECT_EQ(d.Add("a\xFF"
                  "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(d.Add("\x80"), kFffd);                          // stray continuation byte
  EXPECT_EQ(d.Add("\xC0\x80"), kFffd + kFffd);              // overlong NUL
  EXPECT_EQ(d.Add("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // surrogate U+D800
  EXPECT_EQ(d.Add("\xC3x"), kFffd + "x");                   // lead byte cut short
}

TEST(IncrementalDetokenizerTest, FlushReplacesAnUnfinishedSequence) {
  IncrementalDetokenizer d;
  EXPECT_EQ(d.Add("ok\xE2\x82"), "ok");
  EXPECT_EQ(d.Flush(), kFffd);
  EXPECT_EQ(d.Flush(), "");
}

TEST(SanitizeUtf8Test, ValidTextIsUnchanged) {
  EXPECT_EQ(SanitizeUtf8("h\xC3\xA9llo \xE2\x82\xAC"), "h\xC3\xA9llo \xE2\x82\xAC");
  EXPECT_EQ(SanitizeUtf8("\xE2\x82"), kFffd);
}

}  // namespace
}  // namespace kvserve::server
