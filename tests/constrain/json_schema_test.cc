// JSON schemas to GBNF: each supported keyword compiled, parsed by Grammar and run against
// JSON texts that validate (and must be accepted) and texts that do not or are spelled
// differently (and must be refused), expected by hand from JSON Schema's meaning and the
// narrowings json_schema.h documents; and every refusal named with its JSON pointer.
#include "constrain/json_schema.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "constrain/grammar.h"
#include "gtest/gtest.h"
#include "tests/base/small_stack.h"

namespace kvserve::constrain {
namespace {

bool Matches(const std::shared_ptr<const Grammar>& grammar, const std::string& text) {
  GrammarMatcher matcher(grammar);
  return matcher.AcceptBytes(text) && matcher.IsAccepting();
}

struct Case {
  std::string schema;
  std::vector<std::string> accept;
  std::vector<std::string> refuse;
};

void ExpectCases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    absl::StatusOr<std::string> gbnf = JsonSchemaToGbnf(c.schema);
    ASSERT_TRUE(gbnf.ok()) << c.schema << ": " << gbnf.status();
    absl::StatusOr<std::shared_ptr<const Grammar>> grammar = Grammar::Parse(*gbnf);
    ASSERT_TRUE(grammar.ok()) << c.schema << ": " << grammar.status() << "\n" << *gbnf;
    for (const std::string& s : c.accept) {
      EXPECT_TRUE(Matches(*grammar, s)) << c.schema << " should accept " << s << "\n" << *gbnf;
    }
    for (const std::string& s : c.refuse) {
      EXPECT_FALSE(Matches(*grammar, s)) << c.schema << " should refuse " << s << "\n" << *gbnf;
    }
  }
}

TEST(JsonSchemaTest, ScalarTypes) {
  ExpectCases({
      {R"({"type":"string"})",
       {R"("abc")", R"("")", R"("a\"b")", R"("\u00e9\/\b\f\n\r\t\\")", "\"\xc3\xa9\""},
       {"abc", R"("a"b")", "\"\n\"", R"("\x")", R"( "a")", R"("a)", R"("\u12")"}},
      {R"({"type":"number"})",
       {"0", "-1.5", "1e10", "2.5E-3", "1E+2", "123456789012345", "0.123456789012345", "-0"},
       {"01", "1.", ".5", "+1", "1234567890123456", "1e1234", "0.1234567890123456", "\"1\"", "1 ",
        "-"}},
      {R"({"type":"integer"})",
       {"0", "-7", "42", "999999999999999"},
       {"1.0", "1.5", "1e2", "01", "1000000000000000", "\"1\""}},
      {R"({"type":"boolean"})", {"true", "false"}, {"True", "1", "null", "\"true\""}},
      {R"({"type":"null"})", {"null"}, {"nul", "\"null\"", "0"}},
      {R"({"type":["string","null"]})", {R"("x")", "null"}, {"1", "true"}},
      {R"({"type":["integer","boolean"]})", {"3", "false"}, {"1.5", "null"}},
  });
}

TEST(JsonSchemaTest, ObjectsPropertiesInOrderRequiredAndOptional) {
  ExpectCases({
      {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
          "c":{"type":"boolean"}},"required":["b"]})",
       {R"({"b":"x"})", R"({"a":1,"b":"x"})", R"({"b":"x","c":true})",
        R"({"a":1,"b":"x","c":false})"},
       {"{}", R"({"a":1})", R"({"b":"x","a":1})", R"({"b":"x",})", R"({,"b":"x"})",
        R"({"b":"x","d":1})", R"({"a":1,,"b":"x"})", R"({ "b":"x"})", R"({"b": "x"})",
        R"({"a":"1","b":"x"})", R"({"b":"x","c":true,"c":true})"}},
      {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}}})",
       {"{}", R"({"a":1})", R"({"b":2})", R"({"a":1,"b":2})"},
       {"{,}", R"({"a":1,})", R"({"b":2,"a":1})", R"({,"b":2})"}},
      {R"({"type":"object","properties":{"a":{"type":"null"},"b":{"type":"null"}},
          "required":["b","a"]})",
       {R"({"a":null,"b":null})"},
       {"{}", R"({"a":null})", R"({"b":null})", R"({"b":null,"a":null})"}},
      // Only the middle property is optional.
      {R"({"properties":{"a":{"const":1},"b":{"const":2},"c":{"const":3}},
          "required":["a","c"]})",
       {R"({"a":1,"c":3})", R"({"a":1,"b":2,"c":3})"},
       {R"({"a":1,"b":2})", R"({"a":1,,"c":3})", R"({"b":2,"c":3})"}},
      {R"({"type":"object","properties":{"a/\"b":{"type":"integer"}},"required":["a/\"b"]})",
       {R"({"a/\"b":5})"},
       {R"({"a/"b":5})", "{}"}},
      {R"({"type":"object","properties":{}})", {"{}"}, {R"({"a":1})"}},
  });
}

TEST(JsonSchemaTest, AdditionalProperties) {
  ExpectCases({
      // With "properties": false, true and absent all allow only the declared ones.
      {R"({"type":"object","properties":{"a":{}},"additionalProperties":false})",
       {R"({"a":[1,{"x":null}]})", "{}"},
       {R"({"b":1})", R"({"a":1,"b":1})"}},
      {R"({"type":"object","properties":{"a":{}},"additionalProperties":true})",
       {R"({"a":"x"})"},
       {R"({"b":1})"}},
      // Without "properties": any object, a map of one value schema, or only {}.
      {R"({"type":"object"})",
       {"{}", R"({"x":[1,"y"],"z":{}})", R"({"a":{"b":{"c":[[],[null]]}}})"},
       {"[]", R"({"x"})", R"({"x":1,})", "null", R"({x:1})"}},
      {R"({"type":"object","additionalProperties":{"type":"integer"}})",
       {"{}", R"({"a":1,"b":2})"},
       {R"({"a":"x"})", R"({"a":1,"b":[]})"}},
      {R"({"type":"object","additionalProperties":false})", {"{}"}, {R"({"a":1})"}},
  });
}

TEST(JsonSchemaTest, NestedObjects) {
  ExpectCases({
      {R"({"type":"object","properties":{"user":{"type":"object","properties":{
          "name":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}}},
          "required":["name"]}},"required":["user"]})",
       {R"({"user":{"name":"x","tags":["a","b"]}})", R"({"user":{"name":"x"}})",
        R"({"user":{"name":"x","tags":[]}})"},
       {R"({"user":{}})", R"({"user":{"name":1}})", R"({"user":{"name":"x","tags":[1]}})", "{}",
        R"({"name":"x"})"}},
      // No "type", but "properties": an object.
      {R"({"properties":{"a":{"properties":{"b":{"type":"integer"}},"required":["b"]}},
          "required":["a"]})",
       {R"({"a":{"b":1}})"},
       {R"({"a":{}})", "1", R"({"a":{"b":"1"}})"}},
  });
}

TEST(JsonSchemaTest, EnumAndConst) {
  ExpectCases({
      {R"({"enum":["red",1,null,true,{"a":[1]},2.5,"x\ny"]})",
       {R"("red")", "1", "null", "true", R"({"a":[1]})", "2.5", R"("x\ny")"},
       {R"("blue")", "2", R"({"a": [1]})", "false", "\"x\ny\"", "2.50"}},
      {R"({"const":"x\ny"})", {R"("x\ny")"}, {"\"x\ny\"", R"("xy")"}},
      {R"({"const":{"b":[1,-2.5e-7,"q\"",false],"a":null}})",
       {R"({"b":[1,-2.5e-07,"q\"",false],"a":null})"},
       {R"({"a":null,"b":[1,-2.5e-07,"q\"",false]})"}},
      // "type" does not widen a const.
      {R"({"type":"string","const":"a"})", {R"("a")"}, {R"("b")"}},
  });
}

TEST(JsonSchemaTest, Arrays) {
  ExpectCases({
      {R"({"type":"array","items":{"type":"integer"}})",
       {"[]", "[1]", "[1,2,3]"},
       {"[1,]", R"(["a"])", "[,1]", "[1 ,2]", "[1, 2]", "{}"}},
      {R"({"type":"array"})", {"[]", R"([1,"a",null,[{}]])"}, {"[", "[1,]"}},
      {R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})",
       {"[1]", "[1,2]", "[1,2,3]"},
       {"[]", "[1,2,3,4]"}},
      {R"({"type":"array","items":{"type":"integer"},"minItems":2})",
       {"[1,2]", "[1,2,3,4,5]"},
       {"[]", "[1]"}},
      {R"({"type":"array","items":{"type":"integer"},"maxItems":0})", {"[]"}, {"[1]"}},
      {R"({"maxItems":2})", {"[]", "[1,\"x\"]"}, {"[1,2,3]", "1"}},
      {R"({"type":"array","items":{"type":"array","items":{"type":"boolean"}}})",
       {"[[true],[],[false,true]]"},
       {"[true]", "[[1]]"}},
  });
}

TEST(JsonSchemaTest, PrefixItems) {
  ExpectCases({
      {R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],
          "items":false})",
       {"[]", R"(["a"])", R"(["a",1])"},
       {R"(["a",1,2])", "[1]", R"([1,"a"])"}},
      {R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],
          "items":false,"minItems":1})",
       {R"(["a"])", R"(["a",1])"},
       {"[]"}},
      {R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],
          "items":{"type":"integer"},"minItems":3})",
       {R"(["a",1,2])", R"(["a",1,2,3])"},
       {R"(["a",1])", R"(["a",1,"x"])", "[]"}},
      {R"({"type":"array","prefixItems":[{"type":"string"}]})",
       {"[]", R"(["a"])", R"(["a",1,null])"},
       {"[1]"}},
      {R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],
          "maxItems":1})",
       {"[]", R"(["a"])"},
       {R"(["a",1])"}},
      // Draft 7 tuples: "items" as a list, "additionalItems".
      {R"({"type":"array","items":[{"type":"boolean"}],"additionalItems":false})",
       {"[]", "[true]"},
       {"[true,true]", "[1]"}},
      {R"({"type":"array","items":[{"type":"boolean"}],"additionalItems":{"type":"null"}})",
       {"[true,null,null]"},
       {"[true,true]"}},
  });
}

TEST(JsonSchemaTest, StringLengthsCountCharacters) {
  ExpectCases({
      {R"({"type":"string","minLength":2,"maxLength":3})",
       {R"("ab")", R"("abc")", R"("a\"c")", "\"\xc3\xa9\\u00e9\"", "\"\xf0\x9f\x98\x80x\"",
        R"("\n\t")"},
       {R"("a")", R"("abcd")", R"("")", R"("\"")"}},
      {R"({"type":"string","maxLength":0})", {R"("")"}, {R"("a")"}},
      {R"({"minLength":1})", {R"("a")"}, {R"("")", "1"}},
  });
}

TEST(JsonSchemaTest, PatternsMatchTheWholeDecodedContent) {
  ExpectCases({
      {R"({"type":"string","pattern":"^[a-z]+\\d$"})",
       {R"("abc1")", R"("z9")"},
       {R"("abc")", R"("1")", R"("xabc1y")", R"("ABC1")", "abc1"}},
      {R"({"type":"string","pattern":"[a-z]+"})",  // anchored although JSON Schema searches
       {R"("abc")"},
       {R"("1abc")"}},
      {R"({"type":"string","pattern":"a\"b"})", {R"("a\"b")"}, {R"("a"b")", R"("ab")"}},
      {R"({"type":"string","pattern":"\\\\d"})", {R"("\\d")"}, {R"("\d")", R"("5")"}},
      {R"({"type":"string","pattern":"x.y"})",
       {R"("x-y")", R"("x\ty")", R"("x\u0009y")", R"("x\/y")", R"("x/y")", R"("x\"y")"},
       {R"("x\ny")", R"("x\u000Ay")", "\"x\ty\"", R"("xy")"}},
      {R"({"type":"string","pattern":"(ab|cd){2}"})",
       {R"("abcd")", R"("cdcd")"},
       {R"("ab")", R"("abc")"}},
      {R"({"pattern":"^\\d{3}-\\d{4}$"})", {R"("555-1234")"}, {R"("5551234")", "555"}},
  });
}

TEST(JsonSchemaTest, Formats) {
  ExpectCases({
      {R"({"type":"string","format":"date"})",
       {R"("2024-02-29")", R"("1999-12-31")"},
       {R"("2024-13-01")", R"("2024-1-01")", R"("24-01-01")", R"("2024-00-10")", R"("2024-01-32")",
        "2024-01-01"}},
      {R"({"type":"string","format":"time"})",
       {R"("12:34:56Z")", R"("23:59:59.123+05:30")", R"("00:00:00-08:00")"},
       {R"("24:00:00Z")", R"("12:34:56")", R"("12:60:00Z")", R"("1:02:03Z")"}},
      {R"({"type":"string","format":"date-time"})",
       {R"("2024-01-02T03:04:05Z")", R"("2024-01-02t03:04:05.5+01:00")"},
       {R"("2024-01-02 03:04:05Z")", R"("2024-01-02")"}},
      {R"({"type":"string","format":"uuid"})",
       {R"("123e4567-e89b-12d3-a456-426614174000")", R"("123E4567-E89B-12D3-A456-426614174000")"},
       {R"("123e4567e89b12d3a456426614174000")", R"("123e4567-e89b-12d3-a456-42661417400")",
        R"("g23e4567-e89b-12d3-a456-426614174000")"}},
      // Unknown formats are ignored.
      {R"({"type":"string","format":"email"})", {R"("not an email")"}, {"1"}},
  });
}

TEST(JsonSchemaTest, IntegerBounds) {
  ExpectCases({
      {R"({"type":"integer","minimum":-5,"maximum":123})",
       {"-5", "-1", "0", "9", "10", "99", "100", "119", "123"},
       {"-6", "124", "200", "1000", "-10", "01", "-0", "1.0"}},
      {R"({"type":"integer","minimum":10})",
       {"10", "11", "99", "999999999999999"},
       {"9", "-1", "0", "1000000000000000"}},
      {R"({"type":"integer","maximum":-3})", {"-3", "-100", "-999999999999999"}, {"-2", "0", "3"}},
      {R"({"type":"integer","minimum":1.5,"maximum":3.9})", {"2", "3"}, {"1", "4"}},
      {R"({"type":"integer","minimum":0,"maximum":0})", {"0"}, {"1", "-1", "00"}},
      {R"({"type":"integer","minimum":-9223372036854775808,"maximum":3})",
       {"-999999999999999", "3"},
       {"4", "-1000000000000000"}},
      {R"({"minimum":100,"maximum":100000})",
       {"100", "5555", "99999", "100000"},
       {"99", "100001", "1000000"}},
  });
}

// Every integer in a window, expected by comparing with the bounds.
TEST(JsonSchemaTest, IntegerBoundsExhaustively) {
  for (const auto& [lo, hi] :
       std::vector<std::pair<int, int>>{{-123, 1050}, {7, 7}, {-9, -1}, {0, 99}, {19, 2001}}) {
    std::string schema =
        absl::StrCat(R"({"type":"integer","minimum":)", lo, R"(,"maximum":)", hi, "}");
    absl::StatusOr<std::string> gbnf = JsonSchemaToGbnf(schema);
    ASSERT_TRUE(gbnf.ok()) << gbnf.status();
    absl::StatusOr<std::shared_ptr<const Grammar>> grammar = Grammar::Parse(*gbnf);
    ASSERT_TRUE(grammar.ok()) << grammar.status() << "\n" << *gbnf;
    for (int n = -300; n <= 2200; ++n) {
      EXPECT_EQ(Matches(*grammar, absl::StrCat(n)), n >= lo && n <= hi) << schema << " " << n;
    }
  }
}

TEST(JsonSchemaTest, AnyOfOneOfAllOf) {
  ExpectCases({
      {R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]})",
       {"1", R"("a")"},
       {R"("ab")", "null"}},
      {R"({"oneOf":[{"type":"null"},{"type":"object","properties":{"a":{"const":1}},
          "required":["a"]}],"description":"a note"})",
       {"null", R"({"a":1})"},
       {"{}", "1"}},
      {R"({"allOf":[{"type":"integer"}]})", {"1"}, {R"("a")"}},
  });
}

TEST(JsonSchemaTest, References) {
  ExpectCases({
      {R"({"$defs":{"pos":{"type":"integer","minimum":0}},"type":"array",
          "items":{"$ref":"#/$defs/pos"}})",
       {"[0,5]", "[]"},
       {"[-1]"}},
      {R"({"definitions":{"s":{"type":"string"}},"$ref":"#/definitions/s"})", {R"("x")"}, {"1"}},
      {R"({"$defs":{"a~b/c":{"const":1}},"$ref":"#/$defs/a~0b~1c"})", {"1"}, {"2"}},
      // Recursive: a linked list.
      {R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
          "next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},
          "required":["value","next"]}},"$ref":"#/$defs/node"})",
       {R"({"value":1,"next":null})", R"({"value":1,"next":{"value":2,"next":null}})"},
       {R"({"value":1,"next":{"value":2}})", R"({"value":1})"}},
      // Recursive through the root.
      {R"({"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#"}}}})",
       {"{}", R"({"children":[{},{"children":[]}]})", R"({"children":[{"children":[{}]}]})"},
       {R"({"children":[1]})"}},
      // One definition used twice.
      {R"({"$defs":{"b":{"type":"boolean"}},"type":"object","properties":{
          "x":{"$ref":"#/$defs/b"},"y":{"$ref":"#/$defs/b"}},"required":["x","y"]})",
       {R"({"x":true,"y":false})"},
       {R"({"x":true,"y":1})"}},
  });
}

TEST(JsonSchemaTest, AnyValueAndAnnotations) {
  ExpectCases({
      {"{}", {"1", R"({"a":[true,null]})", R"("s")", "[]", "-2.5e3"}, {"tru", R"({"a":})", ""}},
      {"true", {"null", "[1,[2]]"}, {"nul"}},
      {R"({"title":"x","description":"y","$schema":"https://json-schema.org/draft/2020-12/schema",
          "$id":"urn:x","examples":[1],"default":1,"$comment":"c","type":"integer",
          "uniqueItems":false,"x-vendor":{"not":1}})",
       {"1"},
       {R"("1")"}},
  });
}

TEST(JsonSchemaTest, AnyJsonObject) {
  absl::StatusOr<std::shared_ptr<const Grammar>> grammar = Grammar::Parse(AnyJsonObjectGbnf());
  ASSERT_TRUE(grammar.ok()) << grammar.status() << "\n" << AnyJsonObjectGbnf();
  for (const char* text : {"{}", R"({"a":{"b":[1,2.5e3,"x",true,false,null]}})", R"({"a":1,"a":2})",
                           R"({"\u00e9":"\n"})"}) {
    EXPECT_TRUE(Matches(*grammar, text)) << text;
  }
  for (const char* text : {"[]", R"("x")", R"({"a":1,})", "{ }", R"({"a" :1})", "1", ""}) {
    EXPECT_FALSE(Matches(*grammar, text)) << text;
  }
}

void ExpectRefused(const std::string& schema, const std::string& message) {
  absl::StatusOr<std::string> gbnf = JsonSchemaToGbnf(schema);
  ASSERT_FALSE(gbnf.ok()) << schema << " compiled to " << *gbnf;
  EXPECT_EQ(gbnf.status().code(), absl::StatusCode::kInvalidArgument) << schema;
  EXPECT_EQ(gbnf.status().message(), message) << schema;
}

TEST(JsonSchemaTest, UnsupportedKeywordsNameThePointer) {
  ExpectRefused(R"({"properties":{"tags":{"type":"array","uniqueItems":true}}})",
                R"(json_schema at /properties/tags: "uniqueItems" is not supported)");
  for (const char* keyword :
       {"not", "if", "then", "else", "patternProperties", "dependentRequired", "dependentSchemas",
        "dependencies", "propertyNames", "minProperties", "maxProperties", "contains", "multipleOf",
        "exclusiveMinimum", "exclusiveMaximum", "unevaluatedProperties", "unevaluatedItems",
        "$dynamicRef"}) {
    ExpectRefused(absl::StrCat(R"({"type":"integer",")", keyword, R"(":1})"),
                  absl::StrCat("json_schema at /: \"", keyword, "\" is not supported"));
  }
  ExpectRefused(R"({"type":"array","items":{"anyOf":[{"not":{}}]}})",
                R"(json_schema at /items/anyOf/0: "not" is not supported)");
  ExpectRefused(R"({"properties":{"a/b~c":{"multipleOf":2}}})",
                R"(json_schema at /properties/a~1b~0c: "multipleOf" is not supported)");
  ExpectRefused(R"({"$defs":{"d":{"if":{}}},"$ref":"#/$defs/d"})",
                R"(json_schema at /$defs/d: "if" is not supported)");
}

TEST(JsonSchemaTest, OtherRefusals) {
  ExpectRefused(R"({"$ref":"http://example.com/s.json"})",
                R"(json_schema at /: "$ref" "http://example.com/s.json" is not supported )"
                R"((only "#", "#/$defs/NAME" and "#/definitions/NAME"))");
  ExpectRefused(R"({"properties":{"a":{"$ref":"#/properties/b"}}})",
                R"(json_schema at /properties/a: "$ref" "#/properties/b" is not supported )"
                R"((only "#", "#/$defs/NAME" and "#/definitions/NAME"))");
  ExpectRefused(R"({"$ref":"#/$defs/nope"})",
                R"(json_schema at /: "$ref" "#/$defs/nope" names no definition)");
  ExpectRefused(R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},)"
                R"("$ref":"#/$defs/a"})",
                R"(json_schema at /: "$ref" cycle: the schema refers to itself without content)");
  ExpectRefused(R"({"$defs":{"a":{"type":"integer"}},"$ref":"#/$defs/a","type":"string"})",
                R"(json_schema at /: "$ref" next to "type" is not supported)");
  ExpectRefused(R"({"anyOf":[{}],"minimum":1})",
                R"(json_schema at /: "anyOf" next to "minimum" is not supported)");
  ExpectRefused(R"({"anyOf":[]})", R"(json_schema at /: "anyOf" must be a non-empty list)");
  ExpectRefused(R"({"allOf":[{"type":"integer"},{"minimum":0}]})",
                R"(json_schema at /: "allOf" is only supported with exactly one schema)");
  ExpectRefused(R"({"type":"number","minimum":0})",
                R"(json_schema at /: "minimum" is only supported with "type": "integer")");
  ExpectRefused(R"({"type":"integer","minimum":5,"maximum":4})",
                R"(json_schema at /: no integer of at most 15 digits lies within "minimum" )"
                R"(and "maximum")");
  ExpectRefused(R"({"type":"integer","minimum":1e16})",
                R"(json_schema at /: no integer of at most 15 digits lies within "minimum" )"
                R"(and "maximum")");
  ExpectRefused(R"({"type":"integer","minimum":"1"})",
                R"(json_schema at /: "minimum" must be a number)");
  ExpectRefused(R"j({"type":"string","pattern":"a(?=b)"})j",
                R"(json_schema at /: "pattern": regex at offset 1: lookaround is not supported)");
  ExpectRefused(R"({"type":"string","pattern":"a","maxLength":3})",
                R"(json_schema at /: "pattern" together with "minLength/maxLength" is not )"
                R"(supported)");
  ExpectRefused(R"({"type":"string","format":"date","minLength":3})",
                R"(json_schema at /: "format" together with "minLength/maxLength" is not )"
                R"(supported)");
  ExpectRefused(R"({"type":"object","properties":{"a":{}},"required":["b"]})",
                R"(json_schema at /: "required" names "b", which is not in "properties")");
  ExpectRefused(R"({"type":"object","required":["b"]})",
                R"(json_schema at /: "required" without "properties" is not supported)");
  ExpectRefused(R"({"properties":{"a":false}})",
                R"(json_schema at /properties/a: the false schema matches nothing)");
  ExpectRefused("false", R"(json_schema at /: the false schema matches nothing)");
  ExpectRefused("[1]", R"(json_schema at /: a schema must be an object or a boolean)");
  ExpectRefused(R"({"type":"array","minItems":3,"maxItems":2})",
                R"(json_schema at /: "minItems" is greater than "maxItems")");
  ExpectRefused(R"({"type":"array","maxItems":1001})",
                R"(json_schema at /: "maxItems" over 1000 is not supported)");
  ExpectRefused(R"({"type":"array","minItems":-1})",
                R"(json_schema at /: "minItems" must be a non-negative integer)");
  ExpectRefused(R"({"type":"array","prefixItems":[{}],"items":false,"minItems":2})",
                R"(json_schema at /: "minItems" exceeds the 1 items allowed)");
  ExpectRefused(R"({"type":"string","minLength":3,"maxLength":2})",
                R"(json_schema at /: "minLength" is greater than "maxLength")");
  ExpectRefused(R"({"type":"strin"})", R"(json_schema at /: unknown "type" "strin")");
  ExpectRefused(R"({"type":[]})",
                R"(json_schema at /: "type" must be a type name or a non-empty list of them)");
  ExpectRefused(R"({"enum":[]})", R"(json_schema at /: "enum" must be a non-empty list)");
  absl::StatusOr<std::string> malformed = JsonSchemaToGbnf(R"({"type":)");
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(malformed.status().message().substr(0, 13), "json_schema: ") << malformed.status();
}

// Documented: left recursion through "anyOf" is left to Grammar::Parse to refuse.
TEST(JsonSchemaTest, LeftRecursionIsRefusedByTheGrammar) {
  absl::StatusOr<std::string> gbnf = JsonSchemaToGbnf(
      R"({"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/a"},{"type":"null"}]}},"$ref":"#/$defs/a"})");
  ASSERT_TRUE(gbnf.ok()) << gbnf.status();
  absl::StatusOr<std::shared_ptr<const Grammar>> grammar = Grammar::Parse(*gbnf);
  ASSERT_FALSE(grammar.ok());
  EXPECT_NE(grammar.status().message().find("left recursion"), std::string::npos)
      << grammar.status();
}

// The deepest schema the JSON reader allows (64 levels), on a small thread stack: compiled, or
// refused with a named error, never a crash.
TEST(JsonSchemaTest, DeepNestingOnASmallStack) {
  std::string schema;
  const int levels = 63;
  for (int i = 0; i < levels; ++i) schema += R"({"type":"array","items":)";
  schema += R"({"type":"integer"})";
  for (int i = 0; i < levels; ++i) schema += "}";
  absl::StatusOr<std::string> on_main = JsonSchemaToGbnf(schema);
  ASSERT_TRUE(on_main.ok()) << on_main.status();
  absl::StatusOr<std::shared_ptr<const Grammar>> grammar = Grammar::Parse(*on_main);
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  EXPECT_TRUE(Matches(*grammar, std::string(levels, '[') + "7" + std::string(levels, ']')));
  EXPECT_FALSE(
      Matches(*grammar, std::string(levels - 1, '[') + "7" + std::string(levels - 1, ']')));
  absl::StatusOr<std::string> on_small("");
  kvserve::testing::RunOnStack(100 * 1024, [&] { on_small = JsonSchemaToGbnf(schema); });
  if (!on_small.ok()) {
    EXPECT_EQ(on_small.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(on_small.status().message().find("nested too deeply"), std::string::npos)
        << on_small.status();
  } else {
    EXPECT_EQ(*on_small, *on_main);
  }
}

}  // namespace
}  // namespace kvserve::constrain
