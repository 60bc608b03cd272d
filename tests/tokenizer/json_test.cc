// engine/json.h: values, escapes (incl. surrogate pairs), and errors with byte offsets.
// Expected values are written out by hand.
#include "engine/json.h"

#include <string>

#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

TEST(JsonTest, ParsesNestedValues) {
  absl::StatusOr<JsonValue> v = ParseJson(
      " {\"a\": [1, -2.5e2, true, false, null], \"b\": {\"c\": \"d\"}, \"e\": [], \"f\": {}} \n");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->is_object());
  ASSERT_EQ(v->object().size(), 4u);
  const JsonValue* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->is_array());
  ASSERT_EQ(a->array().size(), 5u);
  EXPECT_EQ(a->array()[0].number(), 1.0);
  EXPECT_EQ(a->array()[1].number(), -250.0);
  EXPECT_TRUE(a->array()[2].is_bool());
  EXPECT_TRUE(a->array()[2].bool_value());
  EXPECT_FALSE(a->array()[3].bool_value());
  EXPECT_TRUE(a->array()[4].is_null());
  EXPECT_EQ(v->Find("b")->Find("c")->string(), "d");
  EXPECT_TRUE(v->Find("e")->array().empty());
  EXPECT_TRUE(v->Find("f")->is_object());
  EXPECT_EQ(v->Find("zzz"), nullptr);
  EXPECT_EQ(a->Find("x"), nullptr);  // not an object
}

TEST(JsonTest, DecodesEscapes) {
  // \u00e9 = é (C3 A9), \u4e2d = 中 (E4 B8 AD), \ud83d\ude00 = U+1F600 (F0 9F 98 80).
  absl::StatusOr<JsonValue> v =
      ParseJson(R"(["q\"b\\s\/n\nt\tr\rb\bf\f", "\u00e9\u4E2D\ud83d\ude00", "raw é"])");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->array()[0].string(), "q\"b\\s/n\nt\tr\rb\bf\f");
  EXPECT_EQ(v->array()[1].string(), "\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
  EXPECT_EQ(v->array()[2].string(), "raw \xC3\xA9");
}

TEST(JsonTest, DuplicateKeysFindTheLast) {
  absl::StatusOr<JsonValue> v = ParseJson(R"({"k": 1, "k": 2})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->Find("k")->number(), 2.0);
}

TEST(JsonTest, ErrorsNameTheByteOffset) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {
           Case{"[1, 2", "expected ',' or ']' in array at byte 5"},
           Case{"{\"a\" 1}", "expected ':' at byte 5"},
           Case{"[01]", "expected ',' or ']' in array at byte 2"},
           Case{"[1.]", "no digits after '.' at byte 3"},
           Case{"\"abc", "unterminated string at byte 4"},
           Case{"\"\\x\"", "unknown escape at byte 2"},
           Case{"\"\\ud83d\"", "high surrogate without a following \\u escape at byte 7"},
           Case{"\"\\ude00\"", "unpaired low surrogate at byte 7"},
           Case{"\"\\u12G4\"", "bad hex digit in \\u escape at byte 3"},
           Case{"\"a\nb\"", "control character in string at byte 2"},
           Case{"nul", "unexpected character 'n' at byte 0"},
           Case{"1 2", "unexpected text after the JSON value at byte 2"},
           Case{"", "unexpected end of input at byte 0"},
       }) {
    absl::StatusOr<JsonValue> v = ParseJson(c.text);
    ASSERT_FALSE(v.ok()) << c.text;
    EXPECT_NE(std::string(v.status().message()).find(c.message), std::string::npos)
        << c.text << " -> " << v.status().message();
  }
}

TEST(JsonTest, RejectsTooDeepNesting) {
  EXPECT_FALSE(ParseJson(std::string(600, '[') + std::string(600, ']')).ok());
  EXPECT_TRUE(ParseJson(std::string(500, '[') + std::string(500, ']')).ok());
}

}  // namespace
}  // namespace kvserve::engine
