#include "base/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace kvserve::base {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(AppendUtf8Test, EncodesEachLength) {
  std::string s;
  for (uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F600u}) AppendUtf8(cp, &s);
  EXPECT_EQ(s, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST(Utf8StreamTest, HoldsIncompleteCharactersBack) {
  Utf8Stream d;
  EXPECT_EQ(d.Add("caf\xC3"), "caf");
  EXPECT_EQ(d.Add("\xA9"), "\xC3\xA9");
  // U+1F600 (F0 9F 98 80) one byte at a time.
  EXPECT_EQ(d.Add("\xF0"), "");
  EXPECT_EQ(d.Add("\x9F"), "");
  EXPECT_EQ(d.Add("\x98"), "");
  EXPECT_EQ(d.Add("\x80"), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(d.has_pending());
}

TEST(Utf8StreamTest, InvalidBytesBecomeReplacementCharacters) {
  Utf8Stream d;
  EXPECT_EQ(d.Add("a\xFF"
                  "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(d.Add("\x80"), kFffd);                          // stray continuation byte
  EXPECT_EQ(d.Add("\xC0\x80"), kFffd + kFffd);              // overlong NUL
  EXPECT_EQ(d.Add("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // surrogate U+D800
  EXPECT_EQ(d.Add("\xC3x"), kFffd + "x");                   // lead byte cut short
}

TEST(Utf8StreamTest, FlushReplacesAnUnfinishedSequence) {
  Utf8Stream d;
  EXPECT_EQ(d.Add("ok\xE2\x82"), "ok");
  EXPECT_EQ(d.Flush(), kFffd);
  EXPECT_EQ(d.Flush(), "");
}

TEST(SanitizeUtf8Test, ValidTextIsUnchanged) {
  EXPECT_EQ(SanitizeUtf8("h\xC3\xA9llo \xE2\x82\xAC"), "h\xC3\xA9llo \xE2\x82\xAC");
  EXPECT_EQ(SanitizeUtf8("\xE2\x82"), kFffd);
}

TEST(FindInvalidUtf8Test, OffsetOfTheFirstByteThatIsNoCharacter) {
  const size_t npos = absl::string_view::npos;
  EXPECT_EQ(FindInvalidUtf8(""), npos);
  EXPECT_EQ(FindInvalidUtf8("A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), npos);  // 1 to 4 bytes
  EXPECT_EQ(FindInvalidUtf8("ok\xFF"), 2u);
  EXPECT_EQ(FindInvalidUtf8("\x80"), 0u);                    // stray continuation byte
  EXPECT_EQ(FindInvalidUtf8("ab\xC0\x80"), 2u);              // overlong NUL
  EXPECT_EQ(FindInvalidUtf8("\xED\xA0\x80"), 0u);            // surrogate U+D800
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);        // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("x\xC3x"), 1u);                  // lead byte cut short
  EXPECT_EQ(FindInvalidUtf8("caf\xC3"), 3u);                 // cut short by the end
  EXPECT_EQ(FindInvalidUtf8(std::string("a\0b", 3)), npos);  // NUL is a character
}

}  // namespace
}  // namespace kvserve::base
