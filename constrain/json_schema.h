// JSON Schema (draft 2020-12, and draft 7's "definitions" / array "items") compiled to GBNF
// (grammar.h), for structured output: OpenAI's response_format json_schema and json_object.
//
// The principle: every text the grammar derives is compact JSON that validates against the
// schema; not every valid instance is derivable. Deliberate narrowings:
//   - no whitespace at all between tokens (one deterministic spelling);
//   - objects: only the declared "properties", in the schema's order, each optional one present
//     or not; "additionalProperties" absent, true or a schema adds no extra properties when
//     "properties" is given. Without "properties", an object's members are any (string: value)
//     pairs, values following "additionalProperties" when it is a schema, none when it is false;
//   - numbers: at most 15 integer digits, 15 fraction digits, 3 exponent digits (so a random
//     model's output stays finite); integers at most 15 digits;
//   - strings: escapes \" \\ \/ \b \f \n \r \t \uXXXX; with "pattern" the pattern must match the
//     whole (decoded) content (as if anchored ^...$), and the characters are written raw or with
//     their JSON escape (regex.h, RegexCharEncoding::kJsonString);
//   - a schema without "type" but with keywords of one type (properties, items, minLength,
//     minimum, ...) is that type;
//   - "enum" / "const" values are written compactly; they take precedence over "type".
// Exceptions to the principle: "oneOf" is translated as "anyOf" (exclusivity is not enforced);
// "format": "date" accepts day 31 in every month.
//
// Supported: type (a name or a list), properties, required, additionalProperties, enum, const,
// items (a schema, or draft 7's list with additionalItems), prefixItems, minItems, maxItems
// (at most 1000), minLength, maxLength (code points, at most 1000), pattern, format (date, time,
// date-time, uuid; other values are ignored), minimum / maximum on integers (integer bounds),
// anyOf, oneOf, allOf of one schema, $ref to "#", "#/$defs/NAME" and "#/definitions/NAME" of the
// root schema (recursion allowed), {} and true (any JSON value), $defs / definitions. Ignored:
// title, description, $schema, $id, $anchor, examples, default, $comment, deprecated, readOnly,
// writeOnly, uniqueItems: false, and keywords this file does not know (JSON Schema says unknown
// keywords are ignored).
// Refused, as InvalidArgument "json_schema at POINTER: ..." (POINTER is the JSON pointer of
// the schema object, "/" for the root): keywords that narrow the language and are not
// supported (not, if/then/else, patternProperties, dependentRequired, dependentSchemas,
// dependencies, propertyNames, minProperties, maxProperties, contains, uniqueItems: true,
// multipleOf, exclusiveMinimum, exclusiveMaximum, unevaluatedProperties, unevaluatedItems,
// $dynamicRef, $recursiveRef), minimum / maximum on non-integer numbers or not integral,
// integer ranges with no integer of at most 15 digits, other $ref targets (remote, JSON
// pointers into properties), $ref cycles without content, "$ref" / "anyOf" / "oneOf" / "allOf"
// next to other constraining keywords, "pattern" or "format" together with minLength /
// maxLength, "required" names not in "properties", contradictory bounds, the false schema, and
// malformed keyword values, and nesting deeper than the thread's stack allows (a 100 KiB stack
// holds about 25 levels). A pattern's error is the regex error after the pointer.
// Not detected here: a definition that reaches itself without consuming input through "anyOf"
// ({"anyOf": [{"$ref": "#/$defs/self"}, ...]}) translates, and Grammar::Parse then refuses the
// grammar as left recursive. Lengths count a surrogate pair written as two \uXXXX escapes as
// two characters.
//
// Thread-safety: pure functions.
#ifndef KVSERVE_CONSTRAIN_JSON_SCHEMA_H_
#define KVSERVE_CONSTRAIN_JSON_SCHEMA_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::constrain {

// A complete GBNF grammar (start rule `root`) for the schema `schema_json` (JSON text), as
// described above. Errors: InvalidArgument, for malformed JSON ("json_schema: " and the
// reader's error) and for the cases above.
// `root_name`: the start rule's name; another name makes the grammar a part to embed (a rule
// `root` is then neither defined nor referenced, so the embedding grammar writes its own).
absl::StatusOr<std::string> JsonSchemaToGbnf(absl::string_view schema_json,
                                             absl::string_view root_name = "root");

// A complete GBNF grammar whose sentences are compact JSON objects (any members), for
// response_format {"type": "json_object"}.
std::string AnyJsonObjectGbnf();

}  // namespace kvserve::constrain

#endif  // KVSERVE_CONSTRAIN_JSON_SCHEMA_H_
