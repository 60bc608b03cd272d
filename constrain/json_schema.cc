#include "constrain/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/json.h"
#include "base/stack_guard.h"
#include "base/status_macros.h"
#include "constrain/regex.h"

namespace kvserve::constrain {
namespace {

using base::JsonValue;

constexpr int64_t kMaxIntegerDigits = 15;
constexpr int64_t kIntegerCap = 999'999'999'999'999;  // the largest 15-digit integer
constexpr int64_t kMaxCount = 1000;                   // minItems, maxLength, ...
constexpr int64_t kUnbounded = -1;

// The shared rules: name, body, and the shared rules the body uses.
struct PrimitiveRule {
  const char* name;
  const char* body;
  std::vector<const char*> uses;
};

const std::vector<PrimitiveRule>& PrimitiveRules() {
  static const auto* rules = new std::vector<PrimitiveRule>{
      {"json-value",
       "json-object | json-array | json-string | json-number | \"true\" | \"false\" | \"null\"",
       {"json-object", "json-array", "json-string", "json-number"}},
      {"json-object",
       "\"{\" ( json-string \":\" json-value ( \",\" json-string \":\" json-value )* )? \"}\"",
       {"json-string", "json-value"}},
      {"json-array", "\"[\" ( json-value ( \",\" json-value )* )? \"]\"", {"json-value"}},
      {"json-string", "\"\\\"\" json-char* \"\\\"\"", {"json-char"}},
      {"json-char",
       "[^\\\"\\\\\\u0000-\\u001F] | \"\\\\\" ( [\\\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )",
       {}},
      {"json-number",
       "json-integer ( \".\" [0-9]{1,15} )? ( [eE] [\\-+]? [0-9]{1,3} )?",
       {"json-integer"}},
      {"json-integer", "\"-\"? ( \"0\" | [1-9] [0-9]{0,14} )", {}},
      {"json-date",
       "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" "
       "[01] )",
       {}},
      {"json-time",
       "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,9} )? "
       "( [Zz] | [\\-+] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )",
       {}},
      {"json-uuid",
       "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" "
       "[0-9a-fA-F]{12}",
       {}},
  };
  return *rules;
}

// Keywords that narrow the language and are not supported.
const std::set<std::string>& RefusedKeywords() {
  static const auto* keywords = new std::set<std::string>{"not",
                                                          "if",
                                                          "then",
                                                          "else",
                                                          "patternProperties",
                                                          "dependentRequired",
                                                          "dependentSchemas",
                                                          "dependencies",
                                                          "propertyNames",
                                                          "minProperties",
                                                          "maxProperties",
                                                          "contains",
                                                          "minContains",
                                                          "maxContains",
                                                          "multipleOf",
                                                          "exclusiveMinimum",
                                                          "exclusiveMaximum",
                                                          "unevaluatedProperties",
                                                          "unevaluatedItems",
                                                          "$dynamicRef",
                                                          "$recursiveRef"};
  return *keywords;
}

// Supported keywords that constrain the instance (annotations and $defs excluded).
const std::vector<std::string>& ConstrainingKeywords() {
  static const auto* keywords = new std::vector<std::string>{
      "$ref",      "anyOf",       "oneOf",           "allOf",    "const",
      "enum",      "type",        "properties",      "required", "additionalProperties",
      "items",     "prefixItems", "additionalItems", "minItems", "maxItems",
      "minLength", "maxLength",   "pattern",         "format",   "minimum",
      "maximum"};
  return *keywords;
}

std::string EscapePointerToken(absl::string_view token) {
  std::string out;
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Child(absl::string_view pointer, absl::string_view token) {
  return absl::StrCat(pointer, "/", EscapePointerToken(token));
}

absl::Status SchemaError(absl::string_view pointer, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("json_schema at ", pointer.empty() ? "/" : pointer, ": ", message));
}

// `text` as a JSON string literal (compact; only the required escapes).
std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<uint8_t>(c));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

// The shortest decimal text that reads back as `number`.
std::string JsonNumber(double number) {
  char buffer[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, number);
    if (std::strtod(buffer, nullptr) == number) break;
  }
  return buffer;
}

// `value` as compact JSON text (members in file order).
std::string CompactJson(const JsonValue& value) {
  switch (value.type) {
    case JsonValue::Type::kNull:
      return "null";
    case JsonValue::Type::kBool:
      return value.boolean ? "true" : "false";
    case JsonValue::Type::kNumber:
      return value.is_integer ? absl::StrCat(value.integer) : JsonNumber(value.number);
    case JsonValue::Type::kString:
      return JsonQuote(value.string);
    case JsonValue::Type::kArray: {
      std::vector<std::string> items;
      for (const JsonValue& item : value.array) items.push_back(CompactJson(item));
      return absl::StrCat("[", absl::StrJoin(items, ","), "]");
    }
    case JsonValue::Type::kObject: {
      std::vector<std::string> members;
      for (const auto& [key, member] : value.object) {
        members.push_back(absl::StrCat(JsonQuote(key), ":", CompactJson(member)));
      }
      return absl::StrCat("{", absl::StrJoin(members, ","), "}");
    }
  }
  return "null";
}

// A GBNF quantifier for {min,max} (max kUnbounded: no upper bound).
std::string Quantifier(int64_t min, int64_t max) {
  if (max == kUnbounded) return min == 0 ? "*" : min == 1 ? "+" : absl::StrCat("{", min, ",}");
  if (min == 0 && max == 1) return "?";
  if (min == max) return absl::StrCat("{", min, "}");
  return absl::StrCat("{", min, ",", max, "}");
}

std::string DigitItem(char first, char last) {
  if (first == last) return absl::StrCat("\"", std::string(1, first), "\"");
  return absl::StrCat("[", std::string(1, first), "-", std::string(1, last), "]");
}

// GBNF for the decimal numbers from `lo` to `hi`, both written with the same number of digits
// (leading zeros part of the text).
std::string SameLengthRange(const std::string& lo, const std::string& hi) {
  size_t n = lo.size();
  if (n == 0) return "\"\"";
  if (lo[0] == hi[0]) {
    if (n == 1) return DigitItem(lo[0], lo[0]);
    return absl::StrCat(DigitItem(lo[0], lo[0]), " ", SameLengthRange(lo.substr(1), hi.substr(1)));
  }
  std::string lo_rest = lo.substr(1), hi_rest = hi.substr(1);
  bool lo_rest_zeros = lo_rest.find_first_not_of('0') == std::string::npos;
  bool hi_rest_nines = hi_rest.find_first_not_of('9') == std::string::npos;
  std::vector<std::string> alternatives;
  char middle_first = lo_rest_zeros ? lo[0] : lo[0] + 1;
  char middle_last = hi_rest_nines ? hi[0] : hi[0] - 1;
  if (!lo_rest_zeros) {
    alternatives.push_back(absl::StrCat(DigitItem(lo[0], lo[0]), " ",
                                        SameLengthRange(lo_rest, std::string(n - 1, '9'))));
  }
  if (middle_first <= middle_last) {
    std::string middle = DigitItem(middle_first, middle_last);
    if (n > 1) absl::StrAppend(&middle, " [0-9]", n > 2 ? absl::StrCat("{", n - 1, "}") : "");
    alternatives.push_back(middle);
  }
  if (!hi_rest_nines) {
    alternatives.push_back(absl::StrCat(DigitItem(hi[0], hi[0]), " ",
                                        SameLengthRange(std::string(n - 1, '0'), hi_rest)));
  }
  return absl::StrCat("( ", absl::StrJoin(alternatives, " | "), " )");
}

// GBNF for the decimal integers from `lo` to `hi` (0 <= lo <= hi), without leading zeros.
std::string NonNegativeRange(int64_t lo, int64_t hi) {
  std::vector<std::string> alternatives;
  int64_t length_first = 1;  // the smallest number with `digits` digits (0 for one digit)
  for (int digits = 1; digits <= kMaxIntegerDigits; ++digits, length_first *= 10) {
    int64_t length_last = length_first * 10 - 1;
    int64_t first = std::max(lo, digits == 1 ? 0 : length_first);
    int64_t last = std::min(hi, length_last);
    if (first > last) continue;
    alternatives.push_back(SameLengthRange(absl::StrCat(first), absl::StrCat(last)));
  }
  return absl::StrCat("( ", absl::StrJoin(alternatives, " | "), " )");
}

// Reads an optional non-negative integer keyword of at most kMaxCount into `*value`.
absl::Status ReadCount(const JsonValue& schema, absl::string_view keyword,
                       absl::string_view pointer, int64_t* value) {
  const JsonValue* member = schema.Find(keyword);
  if (member == nullptr) return absl::OkStatus();
  if (!member->is_number() || !member->is_integer || member->integer < 0) {
    return SchemaError(pointer, absl::StrCat("\"", keyword, "\" must be a non-negative integer"));
  }
  if (member->integer > kMaxCount) {
    return SchemaError(pointer,
                       absl::StrCat("\"", keyword, "\" over ", kMaxCount, " is not supported"));
  }
  *value = member->integer;
  return absl::OkStatus();
}

class SchemaTranslator {
 public:
  explicit SchemaTranslator(const JsonValue& root, std::string root_name = "root")
      : root_(root), root_name_(std::move(root_name)) {
    used_names_.insert("root");
    used_names_.insert(root_name_);
    for (const PrimitiveRule& rule : PrimitiveRules()) used_names_.insert(rule.name);
  }

  absl::StatusOr<std::string> Run() {
    KVSERVE_ASSIGN_OR_RETURN(root_expression, Translate(root_, ""));
    // Definitions reached by $ref, translated once each (they may add more).
    for (size_t i = 0; i < pending_refs_.size(); ++i) {
      PendingRef ref = pending_refs_[i];
      KVSERVE_ASSIGN_OR_RETURN(body, Translate(*ref.schema, ref.pointer));
      rules_.push_back({ref.rule, body});
    }
    std::string out = absl::StrCat(root_name_, " ::= ", root_expression, "\n");
    for (const auto& [name, body] : rules_) absl::StrAppend(&out, name, " ::= ", body, "\n");
    AppendPrimitives(&out);
    return out;
  }

  // The rule `name` (one of PrimitiveRules) and those it uses will be emitted.
  std::string UsePrimitive(const std::string& name) {
    if (!used_primitives_.insert(name).second) return name;
    for (const PrimitiveRule& rule : PrimitiveRules()) {
      if (name != rule.name) continue;
      for (const char* used : rule.uses) UsePrimitive(used);
    }
    return name;
  }

  void AppendPrimitives(std::string* out) const {
    for (const PrimitiveRule& rule : PrimitiveRules()) {
      if (used_primitives_.count(rule.name) == 0) continue;
      absl::StrAppend(out, rule.name, " ::= ", rule.body, "\n");
    }
  }

 private:
  struct PendingRef {
    std::string rule;
    const JsonValue* schema;
    std::string pointer;
  };

  // A new rule name built from `hint` ([A-Za-z0-9-], unique).
  std::string NewRuleName(absl::string_view hint) {
    std::string base;
    for (char c : hint) {
      bool keep = absl::ascii_isalnum(static_cast<unsigned char>(c));
      if (keep) {
        base += c;
      } else if (!base.empty() && base.back() != '-') {
        base += '-';
      }
    }
    while (!base.empty() && base.back() == '-') base.pop_back();
    if (base.empty()) base = "r";
    std::string name = base;
    for (int suffix = 2; !used_names_.insert(name).second; ++suffix) {
      name = absl::StrCat(base, "-", suffix);
    }
    return name;
  }

  std::string AddRule(absl::string_view hint, std::string body) {
    std::string name = NewRuleName(hint);
    rules_.push_back({name, std::move(body)});
    return name;
  }

  absl::StatusOr<std::string> Translate(const JsonValue& schema, const std::string& pointer);
  absl::Status CheckKeywords(const JsonValue& schema, const std::string& pointer) const;
  absl::Status CheckAlone(const JsonValue& schema, const std::string& pointer,
                          absl::string_view keyword) const;
  absl::StatusOr<std::string> TranslateRef(const JsonValue& schema, const std::string& pointer);
  absl::StatusOr<const JsonValue*> ResolveRef(const std::string& ref, const std::string& pointer,
                                              std::string* target_pointer) const;
  absl::StatusOr<std::string> TranslateAlternatives(const JsonValue& schema,
                                                    const std::string& pointer,
                                                    absl::string_view keyword);
  absl::StatusOr<std::string> TranslateEnum(const JsonValue& schema, const std::string& pointer);
  absl::StatusOr<std::vector<std::string>> Types(const JsonValue& schema,
                                                 const std::string& pointer) const;
  absl::StatusOr<std::string> TranslateType(const std::string& type, const JsonValue& schema,
                                            const std::string& pointer);
  absl::StatusOr<std::string> TranslateInteger(const JsonValue& schema, const std::string& pointer);
  absl::StatusOr<std::string> TranslateString(const JsonValue& schema, const std::string& pointer);
  absl::StatusOr<std::string> TranslateObject(const JsonValue& schema, const std::string& pointer);
  absl::StatusOr<std::string> TranslateDeclaredObject(const JsonValue& schema,
                                                      const std::string& pointer);
  absl::StatusOr<std::string> TranslateArray(const JsonValue& schema, const std::string& pointer);
  // The element schema after the prefix: an expression, or "" when no more items are allowed.
  absl::StatusOr<std::string> TranslateRestItems(const JsonValue* rest, const std::string& pointer);

  const JsonValue& root_;
  const std::string root_name_;
  std::vector<std::pair<std::string, std::string>> rules_;  // name, body
  std::set<std::string> used_names_;
  std::set<std::string> used_primitives_;
  std::map<std::string, std::string> ref_rules_;  // target pointer -> rule
  std::vector<PendingRef> pending_refs_;
};

absl::StatusOr<std::string> SchemaTranslator::Translate(const JsonValue& schema,
                                                        const std::string& pointer) {
  if (schema.is_bool()) {
    if (!schema.boolean) return SchemaError(pointer, "the false schema matches nothing");
    return UsePrimitive("json-value");
  }
  if (!schema.is_object()) return SchemaError(pointer, "a schema must be an object or a boolean");
  if (!base::StackHasRoom()) {
    return SchemaError(pointer, "the schema is nested too deeply for this thread's stack");
  }
  KVSERVE_RETURN_IF_ERROR(CheckKeywords(schema, pointer));
  if (schema.Find("$ref") != nullptr) return TranslateRef(schema, pointer);
  for (const char* keyword : {"anyOf", "oneOf"}) {
    if (schema.Find(keyword) != nullptr) return TranslateAlternatives(schema, pointer, keyword);
  }
  if (const JsonValue* all_of = schema.Find("allOf")) {
    KVSERVE_RETURN_IF_ERROR(CheckAlone(schema, pointer, "allOf"));
    if (!all_of->is_array() || all_of->array.size() != 1) {
      return SchemaError(pointer, "\"allOf\" is only supported with exactly one schema");
    }
    return Translate(all_of->array[0], Child(Child(pointer, "allOf"), "0"));
  }
  if (const JsonValue* constant = schema.Find("const")) {
    return GbnfLiteral(CompactJson(*constant));
  }
  if (schema.Find("enum") != nullptr) return TranslateEnum(schema, pointer);
  KVSERVE_ASSIGN_OR_RETURN(types, Types(schema, pointer));
  if (types.empty()) return UsePrimitive("json-value");
  std::vector<std::string> alternatives;
  for (const std::string& type : types) {
    KVSERVE_ASSIGN_OR_RETURN(alternative, TranslateType(type, schema, pointer));
    alternatives.push_back(alternative);
  }
  if (alternatives.size() == 1) return alternatives[0];
  return absl::StrCat("( ", absl::StrJoin(alternatives, " | "), " )");
}

absl::Status SchemaTranslator::CheckKeywords(const JsonValue& schema,
                                             const std::string& pointer) const {
  for (const auto& [key, value] : schema.object) {
    bool refused = RefusedKeywords().count(key) > 0 ||
                   (key == "uniqueItems" && !(value.is_bool() && !value.boolean));
    if (refused) return SchemaError(pointer, absl::StrCat("\"", key, "\" is not supported"));
  }
  return absl::OkStatus();
}

absl::Status SchemaTranslator::CheckAlone(const JsonValue& schema, const std::string& pointer,
                                          absl::string_view keyword) const {
  for (const std::string& other : ConstrainingKeywords()) {
    if (other != keyword && schema.Find(other) != nullptr) {
      return SchemaError(
          pointer, absl::StrCat("\"", keyword, "\" next to \"", other, "\" is not supported"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<const JsonValue*> SchemaTranslator::ResolveRef(const std::string& ref,
                                                              const std::string& pointer,
                                                              std::string* target_pointer) const {
  if (ref == "#") {
    *target_pointer = "";
    return &root_;
  }
  for (const char* container : {"$defs", "definitions"}) {
    std::string prefix = absl::StrCat("#/", container, "/");
    if (ref.rfind(prefix, 0) != 0) continue;
    std::string token = ref.substr(prefix.size());
    if (token.find('/') != std::string::npos) break;
    std::string name;  // JSON pointer unescaping: ~1 is '/', ~0 is '~'
    for (size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        name += token[++i] == '0' ? '~' : '/';
      } else {
        name += token[i];
      }
    }
    const JsonValue* definitions = root_.Find(container);
    const JsonValue* target = definitions != nullptr ? definitions->Find(name) : nullptr;
    if (target == nullptr) {
      return SchemaError(pointer, absl::StrCat("\"$ref\" \"", ref, "\" names no definition"));
    }
    *target_pointer = Child(absl::StrCat("/", container), name);
    return target;
  }
  return SchemaError(pointer, absl::StrCat("\"$ref\" \"", ref,
                                           "\" is not supported (only \"#\", \"#/$defs/NAME\" "
                                           "and \"#/definitions/NAME\")"));
}

absl::StatusOr<std::string> SchemaTranslator::TranslateRef(const JsonValue& schema,
                                                           const std::string& pointer) {
  const JsonValue* ref = schema.Find("$ref");
  if (!ref->is_string()) return SchemaError(pointer, "\"$ref\" must be a string");
  KVSERVE_RETURN_IF_ERROR(CheckAlone(schema, pointer, "$ref"));
  std::string target_pointer;
  KVSERVE_ASSIGN_OR_RETURN(target, ResolveRef(ref->string, pointer, &target_pointer));
  // A chain of schemas that are only a $ref must end in content (else: left recursion).
  std::set<std::string> chain{pointer};
  const JsonValue* current = target;
  std::string current_pointer = target_pointer;
  while (current->is_object() && current->Find("$ref") != nullptr &&
         current->Find("$ref")->is_string()) {
    if (!chain.insert(current_pointer).second) {
      return SchemaError(pointer, "\"$ref\" cycle: the schema refers to itself without content");
    }
    KVSERVE_ASSIGN_OR_RETURN(
        next, ResolveRef(current->Find("$ref")->string, current_pointer, &current_pointer));
    current = next;
  }
  if (target_pointer.empty()) return root_name_;
  auto [it, inserted] = ref_rules_.emplace(target_pointer, "");
  if (inserted) {
    it->second =
        NewRuleName(absl::StrCat("def", target_pointer.substr(target_pointer.find('/', 1))));
    pending_refs_.push_back({it->second, target, target_pointer});
  }
  return it->second;
}

absl::StatusOr<std::string> SchemaTranslator::TranslateAlternatives(const JsonValue& schema,
                                                                    const std::string& pointer,
                                                                    absl::string_view keyword) {
  KVSERVE_RETURN_IF_ERROR(CheckAlone(schema, pointer, keyword));
  const JsonValue* list = schema.Find(keyword);
  if (!list->is_array() || list->array.empty()) {
    return SchemaError(pointer, absl::StrCat("\"", keyword, "\" must be a non-empty list"));
  }
  std::vector<std::string> alternatives;
  for (size_t i = 0; i < list->array.size(); ++i) {
    KVSERVE_ASSIGN_OR_RETURN(
        alternative, Translate(list->array[i], Child(Child(pointer, keyword), absl::StrCat(i))));
    alternatives.push_back(alternative);
  }
  return absl::StrCat("( ", absl::StrJoin(alternatives, " | "), " )");
}

absl::StatusOr<std::string> SchemaTranslator::TranslateEnum(const JsonValue& schema,
                                                            const std::string& pointer) {
  const JsonValue* values = schema.Find("enum");
  if (!values->is_array() || values->array.empty()) {
    return SchemaError(pointer, "\"enum\" must be a non-empty list");
  }
  std::vector<std::string> alternatives;
  for (const JsonValue& value : values->array) {
    alternatives.push_back(GbnfLiteral(CompactJson(value)));
  }
  return absl::StrCat("( ", absl::StrJoin(alternatives, " | "), " )");
}

absl::StatusOr<std::vector<std::string>> SchemaTranslator::Types(const JsonValue& schema,
                                                                 const std::string& pointer) const {
  static const std::set<std::string> kTypeNames = {"null",   "boolean", "object", "array",
                                                   "number", "integer", "string"};
  std::vector<std::string> types;
  const JsonValue* type = schema.Find("type");
  if (type == nullptr) {  // inferred from the keywords of one type
    static const std::vector<std::pair<std::string, std::vector<std::string>>> kInferred = {
        {"object", {"properties", "required", "additionalProperties"}},
        {"array", {"items", "prefixItems", "additionalItems", "minItems", "maxItems"}},
        {"string", {"minLength", "maxLength", "pattern", "format"}},
        {"integer", {"minimum", "maximum"}}};
    for (const auto& [name, keywords] : kInferred) {
      for (const std::string& keyword : keywords) {
        if (schema.Find(keyword) == nullptr) continue;
        types.push_back(name);
        break;
      }
    }
    return types;
  }
  if (type->is_string()) {
    types.push_back(type->string);
  } else if (type->is_array() && !type->array.empty()) {
    for (const JsonValue& item : type->array) {
      if (!item.is_string()) break;
      types.push_back(item.string);
    }
  }
  if (types.empty() || (type->is_array() && types.size() != type->array.size())) {
    return SchemaError(pointer, "\"type\" must be a type name or a non-empty list of them");
  }
  for (const std::string& name : types) {
    if (kTypeNames.count(name) == 0) {
      return SchemaError(pointer, absl::StrCat("unknown \"type\" \"", name, "\""));
    }
  }
  return types;
}

absl::StatusOr<std::string> SchemaTranslator::TranslateType(const std::string& type,
                                                            const JsonValue& schema,
                                                            const std::string& pointer) {
  if (type == "null") return std::string("\"null\"");
  if (type == "boolean") return std::string("( \"true\" | \"false\" )");
  if (type == "integer") return TranslateInteger(schema, pointer);
  if (type == "string") return TranslateString(schema, pointer);
  if (type == "object") return TranslateObject(schema, pointer);
  if (type == "array") return TranslateArray(schema, pointer);
  for (const char* keyword : {"minimum", "maximum"}) {  // number
    if (schema.Find(keyword) != nullptr) {
      return SchemaError(
          pointer, absl::StrCat("\"", keyword, "\" is only supported with \"type\": \"integer\""));
    }
  }
  return UsePrimitive("json-number");
}

// The integer bound `member` (rounded towards the allowed side), clamped just past the cap.
absl::StatusOr<int64_t> IntegerBound(const JsonValue& member, bool is_minimum,
                                     absl::string_view keyword, absl::string_view pointer) {
  if (!member.is_number()) {
    return SchemaError(pointer, absl::StrCat("\"", keyword, "\" must be a number"));
  }
  double value = member.is_integer ? static_cast<double>(member.integer) : member.number;
  if (member.is_integer && member.integer >= -kIntegerCap && member.integer <= kIntegerCap) {
    return member.integer;
  }
  value = is_minimum ? std::ceil(value) : std::floor(value);
  value = std::clamp(value, static_cast<double>(-kIntegerCap - 1),
                     static_cast<double>(kIntegerCap + 1));
  return static_cast<int64_t>(value);
}

absl::StatusOr<std::string> SchemaTranslator::TranslateInteger(const JsonValue& schema,
                                                               const std::string& pointer) {
  const JsonValue* minimum = schema.Find("minimum");
  const JsonValue* maximum = schema.Find("maximum");
  if (minimum == nullptr && maximum == nullptr) return UsePrimitive("json-integer");
  int64_t lo = -kIntegerCap, hi = kIntegerCap;
  if (minimum != nullptr) {
    KVSERVE_ASSIGN_OR_RETURN(bound, IntegerBound(*minimum, true, "minimum", pointer));
    lo = std::max(lo, bound);
  }
  if (maximum != nullptr) {
    KVSERVE_ASSIGN_OR_RETURN(bound, IntegerBound(*maximum, false, "maximum", pointer));
    hi = std::min(hi, bound);
  }
  if (lo > hi) {
    return SchemaError(pointer, absl::StrCat("no integer of at most ", kMaxIntegerDigits,
                                             " digits lies within \"minimum\" and \"maximum\""));
  }
  std::vector<std::string> alternatives;
  if (lo < 0) {  // "-" and the absolute values
    alternatives.push_back(
        absl::StrCat("\"-\" ", NonNegativeRange(std::max<int64_t>(1, -hi), -lo)));
  }
  if (hi >= 0) alternatives.push_back(NonNegativeRange(std::max<int64_t>(0, lo), hi));
  if (alternatives.size() == 1) return alternatives[0];
  return absl::StrCat("( ", absl::StrJoin(alternatives, " | "), " )");
}

std::string Quoted(absl::string_view content) {
  return absl::StrCat("\"\\\"\" ", content, " \"\\\"\"");
}

absl::StatusOr<std::string> SchemaTranslator::TranslateString(const JsonValue& schema,
                                                              const std::string& pointer) {
  static const std::map<std::string, std::string> kFormats = {
      {"date", "json-date"}, {"time", "json-time"}, {"date-time", ""}, {"uuid", "json-uuid"}};
  const JsonValue* pattern = schema.Find("pattern");
  const JsonValue* format = schema.Find("format");
  bool has_length = schema.Find("minLength") != nullptr || schema.Find("maxLength") != nullptr;
  if (format != nullptr && !format->is_string()) {
    return SchemaError(pointer, "\"format\" must be a string");
  }
  bool known_format = format != nullptr && kFormats.count(format->string) > 0;
  if (pattern != nullptr) {
    if (!pattern->is_string()) return SchemaError(pointer, "\"pattern\" must be a string");
    if (has_length || known_format) {
      return SchemaError(pointer, absl::StrCat("\"pattern\" together with \"",
                                               known_format ? "format" : "minLength/maxLength",
                                               "\" is not supported"));
    }
    auto content = RegexToGbnfExpression(pattern->string, RegexCharEncoding::kJsonString);
    if (!content.ok()) {
      return SchemaError(pointer, absl::StrCat("\"pattern\": ", content.status().message()));
    }
    return Quoted(*content);
  }
  if (known_format) {
    if (has_length) {
      return SchemaError(pointer,
                         "\"format\" together with \"minLength/maxLength\" is not supported");
    }
    if (format->string == "date-time") {
      return Quoted(absl::StrCat(UsePrimitive("json-date"), " [Tt] ", UsePrimitive("json-time")));
    }
    return Quoted(UsePrimitive(kFormats.at(format->string)));
  }
  int64_t min_length = 0, max_length = kUnbounded;
  KVSERVE_RETURN_IF_ERROR(ReadCount(schema, "minLength", pointer, &min_length));
  KVSERVE_RETURN_IF_ERROR(ReadCount(schema, "maxLength", pointer, &max_length));
  if (max_length != kUnbounded && min_length > max_length) {
    return SchemaError(pointer, "\"minLength\" is greater than \"maxLength\"");
  }
  if (!has_length) return UsePrimitive("json-string");
  return Quoted(absl::StrCat(UsePrimitive("json-char"), Quantifier(min_length, max_length)));
}

bool IsRuleName(absl::string_view expression) {
  return !expression.empty() && std::all_of(expression.begin(), expression.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
  });
}

absl::StatusOr<std::string> SchemaTranslator::TranslateObject(const JsonValue& schema,
                                                              const std::string& pointer) {
  const JsonValue* additional = schema.Find("additionalProperties");
  if (additional != nullptr && !additional->is_bool() && !additional->is_object()) {
    return SchemaError(pointer, "\"additionalProperties\" must be a boolean or a schema");
  }
  if (schema.Find("properties") != nullptr) return TranslateDeclaredObject(schema, pointer);
  const JsonValue* required = schema.Find("required");
  if (required != nullptr && required->is_array() && !required->array.empty()) {
    return SchemaError(pointer, "\"required\" without \"properties\" is not supported");
  }
  if (additional == nullptr || (additional->is_bool() && additional->boolean)) {
    return UsePrimitive("json-object");
  }
  if (additional->is_bool()) return std::string("\"{}\"");
  KVSERVE_ASSIGN_OR_RETURN(value, Translate(*additional, Child(pointer, "additionalProperties")));
  if (!IsRuleName(value)) value = AddRule(absl::StrCat(pointer, "/value"), value);
  std::string member = absl::StrCat(UsePrimitive("json-string"), " \":\" ", value);
  return absl::StrCat("\"{\" ( ", member, " ( \",\" ", member, " )* )? \"}\"");
}

absl::StatusOr<std::string> SchemaTranslator::TranslateDeclaredObject(const JsonValue& schema,
                                                                      const std::string& pointer) {
  const JsonValue* properties = schema.Find("properties");
  if (!properties->is_object()) return SchemaError(pointer, "\"properties\" must be an object");
  std::set<std::string> required;
  if (const JsonValue* list = schema.Find("required")) {
    for (const JsonValue& name : list->array) {
      if (!name.is_string()) break;
      required.insert(name.string);
      if (properties->Find(name.string) == nullptr) {
        return SchemaError(pointer, absl::StrCat("\"required\" names \"", name.string,
                                                 "\", which is not in \"properties\""));
      }
    }
    if (!list->is_array() || required.size() != list->array.size()) {
      return SchemaError(pointer, "\"required\" must be a list of distinct strings");
    }
  }
  std::vector<std::string> members;  // rules: "key":value
  std::vector<bool> is_required;
  std::string properties_pointer = Child(pointer, "properties");
  for (const auto& [key, property] : properties->object) {
    std::string property_pointer = Child(properties_pointer, key);
    KVSERVE_ASSIGN_OR_RETURN(value, Translate(property, property_pointer));
    members.push_back(AddRule(absl::StrCat(pointer.empty() ? "root" : pointer, "/", key),
                              absl::StrCat(GbnfLiteral(JsonQuote(key)), " \":\" ", value)));
    is_required.push_back(required.count(key) > 0);
  }
  if (members.empty()) return std::string("\"{}\"");
  // The members after the first present one: each required one, or optionally each optional.
  auto tail = [&](size_t from) {
    std::string out;
    for (size_t i = from; i < members.size(); ++i) {
      std::string item = absl::StrCat("\",\" ", members[i]);
      absl::StrAppend(&out, " ", is_required[i] ? item : absl::StrCat("( ", item, " )?"));
    }
    return out;
  };
  // One alternative per member that can come first: the optional ones before the first
  // required one, and that one. No required member: the empty object too.
  std::vector<std::string> alternatives;
  for (size_t first = 0; first < members.size(); ++first) {
    alternatives.push_back(absl::StrCat(members[first], tail(first + 1)));
    if (is_required[first]) break;
  }
  if (required.empty()) alternatives.push_back("\"\"");
  return absl::StrCat("\"{\" ( ", absl::StrJoin(alternatives, " | "), " ) \"}\"");
}

absl::StatusOr<std::string> SchemaTranslator::TranslateRestItems(const JsonValue* rest,
                                                                 const std::string& pointer) {
  if (rest == nullptr || (rest->is_bool() && rest->boolean)) return UsePrimitive("json-value");
  if (rest->is_bool()) return std::string();
  KVSERVE_ASSIGN_OR_RETURN(item, Translate(*rest, pointer));
  if (IsRuleName(item)) return item;
  return AddRule(pointer, item);
}

absl::StatusOr<std::string> SchemaTranslator::TranslateArray(const JsonValue& schema,
                                                             const std::string& pointer) {
  const JsonValue* prefix_items = schema.Find("prefixItems");
  const JsonValue* items = schema.Find("items");
  std::string prefix_keyword = "prefixItems";
  std::string rest_keyword = "items";
  const JsonValue* rest = items;
  if (prefix_items != nullptr && (!prefix_items->is_array() || (items && items->is_array()))) {
    return SchemaError(pointer, "\"prefixItems\" must be a list (and \"items\" then a schema)");
  }
  if (prefix_items == nullptr && items != nullptr && items->is_array()) {  // draft 7 tuples
    prefix_items = items;
    prefix_keyword = "items";
    rest_keyword = "additionalItems";
    rest = schema.Find("additionalItems");
  }
  int64_t min_items = 0, max_items = kUnbounded;
  KVSERVE_RETURN_IF_ERROR(ReadCount(schema, "minItems", pointer, &min_items));
  KVSERVE_RETURN_IF_ERROR(ReadCount(schema, "maxItems", pointer, &max_items));
  if (max_items != kUnbounded && min_items > max_items) {
    return SchemaError(pointer, "\"minItems\" is greater than \"maxItems\"");
  }
  KVSERVE_ASSIGN_OR_RETURN(rest_item, TranslateRestItems(rest, Child(pointer, rest_keyword)));
  int64_t prefix_count = prefix_items != nullptr ? prefix_items->array.size() : 0;
  if (rest_item.empty()) {
    if (min_items > prefix_count) {
      return SchemaError(pointer,
                         absl::StrCat("\"minItems\" exceeds the ", prefix_count, " items allowed"));
    }
    max_items = max_items == kUnbounded ? prefix_count : std::min(max_items, prefix_count);
  }
  int64_t used_prefix = max_items == kUnbounded ? prefix_count : std::min(prefix_count, max_items);
  int64_t rest_min = std::max<int64_t>(0, min_items - used_prefix);
  int64_t rest_max = max_items == kUnbounded ? kUnbounded : max_items - used_prefix;
  std::string items_text;  // the items after the prefix
  if (!rest_item.empty() && rest_max != 0) {
    if (used_prefix > 0) {
      items_text = absl::StrCat("( \",\" ", rest_item, " )", Quantifier(rest_min, rest_max));
    } else {
      items_text = rest_item;
      if (rest_max != 1) {
        int64_t more_max = rest_max == kUnbounded ? kUnbounded : rest_max - 1;
        absl::StrAppend(&items_text, " ( \",\" ", rest_item, " )",
                        Quantifier(std::max<int64_t>(0, rest_min - 1), more_max));
      }
      if (rest_min == 0) items_text = absl::StrCat("( ", items_text, " )?");
    }
  }
  for (int64_t i = used_prefix - 1; i >= 0; --i) {
    KVSERVE_ASSIGN_OR_RETURN(
        item,
        Translate(prefix_items->array[i], Child(Child(pointer, prefix_keyword), absl::StrCat(i))));
    items_text = absl::StrCat(i == 0 ? "" : "\",\" ", item, " ", items_text);
    if (i >= min_items) items_text = absl::StrCat("( ", items_text, " )?");
  }
  return absl::StrCat("\"[\" ", items_text, " \"]\"");
}

}  // namespace

absl::StatusOr<std::string> JsonSchemaToGbnf(absl::string_view schema_json,
                                             absl::string_view root_name) {
  auto schema = base::ParseJson(schema_json);
  if (!schema.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("json_schema: ", schema.status().message()));
  }
  return SchemaTranslator(*schema, std::string(root_name)).Run();
}

std::string AnyJsonObjectGbnf() {
  JsonValue empty;
  SchemaTranslator translator(empty);
  std::string out = absl::StrCat("root ::= ", translator.UsePrimitive("json-object"), "\n");
  translator.AppendPrimitives(&out);
  return out;
}

}  // namespace kvserve::constrain
