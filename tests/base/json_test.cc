// The JSON reader: values, errors naming the offset, and nesting that cannot overflow a stack
// (the HTTP crash: 46 levels of '[' killed a civetweb worker with the recursive parser).
#include "base/json.h"

#include <string>

#include "base/stack_guard.h"
#include "gtest/gtest.h"
#include "tests/base/small_stack.h"

namespace kvserve::base {
namespace {

std::string Nested(int levels, char open, char close) {
  return std::string(levels, open) + std::string(levels, close);
}

TEST(JsonTest, ReadsEveryKindOfValue) {
  absl::StatusOr<JsonValue> v = ParseJson(
      R"( {"a": [1, -2.5e1, true, false, null], "b": {"c": "x\u00e9\ud83d\ude00\n"}, "d": []} )");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->is_object());
  ASSERT_EQ(v->object.size(), 3u);
  const JsonValue* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->array.size(), 5u);
  EXPECT_TRUE(a->array[0].is_integer);
  EXPECT_EQ(a->array[0].integer, 1);
  EXPECT_DOUBLE_EQ(a->array[1].number, -25.0);
  EXPECT_FALSE(a->array[1].is_integer);
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_TRUE(a->array[3].is_bool());
  EXPECT_FALSE(a->array[3].boolean);
  EXPECT_TRUE(a->array[4].is_null());
  EXPECT_EQ(v->Find("b")->Find("c")->string, "x\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_TRUE(v->Find("d")->is_array());
  EXPECT_TRUE(v->Find("d")->array.empty());
  EXPECT_EQ(v->Find("zz"), nullptr);
}

TEST(JsonTest, KeepsMemberOrderAndNestedEmptyContainers) {
  absl::StatusOr<JsonValue> v = ParseJson(R"({"z": 1, "a": [[], {}, [[]]], "m": {}})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->object[0].first, "z");
  EXPECT_EQ(v->object[1].first, "a");
  EXPECT_EQ(v->object[2].first, "m");
  const JsonValue& a = v->object[1].second;
  ASSERT_EQ(a.array.size(), 3u);
  EXPECT_TRUE(a.array[1].is_object());
  ASSERT_EQ(a.array[2].array.size(), 1u);
  EXPECT_TRUE(a.array[2].array[0].is_array());
}

TEST(JsonTest, MalformedTextNamesTheProblemAndOffset) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"", "unexpected end of text at offset 0"},
      {"[1,]", "unexpected character ']' at offset 3"},
      {R"({"a":1,})", "expected a string key at offset 7"},
      {R"({"a" 1})", "expected ':' at offset 5"},
      {"[1 2]", "expected ',' or ']' at offset 3"},
      {R"({"a":1 "b":2})", "expected ',' or '}' at offset 7"},
      {"[1] x", "unexpected text after the JSON value at offset 4"},
      {"\"abc", "unterminated string"},
      {"[\"\\ud800\"]", "unpaired surrogate"},
      {"[01.]", "malformed number"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<JsonValue> v = ParseJson(c.text);
    ASSERT_FALSE(v.ok()) << c.text;
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(v.status().message().find(c.message), std::string::npos)
        << c.text << ": " << v.status().message();
  }
}

TEST(JsonTest, NestingUpToTheLimitParsesAndDeeperIsAnError) {
  EXPECT_TRUE(ParseJson(Nested(64, '[', ']')).ok());
  absl::StatusOr<JsonValue> deep = ParseJson(Nested(65, '[', ']'));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nesting deeper than 64 levels"), std::string::npos)
      << deep.status();
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"k\":";
  objects += "1" + std::string(65, '}');
  EXPECT_FALSE(ParseJson(objects).ok());
}

// The reproduction from the hardening issue, and far deeper input, on a stack smaller than a
// civetweb worker's: an error, never a crash.
TEST(JsonTest, DeepNestingOnASmallStackIsAnErrorNotACrash) {
  for (const int levels : {46, 64, 65, 100000}) {
    for (const char open : {'[', '{'}) {
      std::string text = open == '[' ? Nested(levels, '[', ']') : "";
      if (open == '{') {
        for (int i = 0; i < levels; ++i) text += "{\"a\":";
        text += "0" + std::string(levels, '}');
      }
      bool ok = false;
      kvserve::testing::RunOnStack(64 * 1024, [&] { ok = ParseJson(text).ok(); });
      EXPECT_EQ(ok, levels <= 64) << levels << " levels of " << open;
    }
  }
}

// Recurses `n` times with 1 KiB frames, then reads the stack left.
__attribute__((noinline)) size_t StackLeftBelow(int n) {
  volatile char pad[1024];
  pad[n % 1024] = 1;
  if (n == 0) return StackBytesLeft();
  const size_t left = StackLeftBelow(n - 1);
  return left + pad[n % 1024] - 1;  // uses pad after the call: no tail call, no folding
}

TEST(StackGuardTest, ReportsLessStackDeeperDown) {
  const size_t here = StackBytesLeft();
  const size_t deeper = StackLeftBelow(16);
  EXPECT_LT(deeper + 16 * 1024, here);
  size_t small = 0;
  kvserve::testing::RunOnStack(128 * 1024, [&] { small = StackBytesLeft(); });
  EXPECT_GT(small, 64 * 1024u);
  EXPECT_LE(small, 128 * 1024u);
}

TEST(JsonTest, JsonToTextIsCompactAndReadsBack) {
  const std::string text =
      R"({"a":[1,-2,0.5,1e+300,true,false,null],"s":"q\"b\\n\n\u0001Ã©","o":{},"e":[]})";
  absl::StatusOr<JsonValue> v = ParseJson(text);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(JsonToText(*v),
            R"({"a":[1,-2,0.5,1e+300,true,false,null],"s":"q\"b\\n\n\u0001Ã©","o":{},"e":[]})");
  JsonValue bad;
  bad.type = JsonValue::Type::kString;
  bad.string = "\xff";
  EXPECT_EQ(JsonToText(bad), "\"\xef\xbf\xbd\"");  // invalid UTF-8 becomes U+FFFD
}

}  // namespace
}  // namespace kvserve::base
