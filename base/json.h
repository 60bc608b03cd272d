// A small JSON reader for model metadata (safetensors headers, Hugging Face config.json).
//
// ParseJson() turns a complete JSON text into a JsonValue tree; every malformation is an
// InvalidArgument error naming the byte offset. Numbers keep their integer value when written
// without fraction or exponent (safetensors offsets exceed 2^53 only in theory, but ids and
// sizes must stay exact). The parser keeps its own stack of open containers instead of
// recursing, so it runs on any thread's stack (an HTTP worker's is ~100 KiB); nesting is still
// limited to 64 levels, which bounds the recursion of the tree's destructor and its readers.
//
// Ownership: JsonValue is a plain value tree. Thread-safety: parsing is pure; const access is
// safe from any thread.
#ifndef KVSERVE_BASE_JSON_H_
#define KVSERVE_BASE_JSON_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::base {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  bool is_integer = false;  // a number written as an integer that fits int64_t
  int64_t integer = 0;      // meaningful when is_integer
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;  // in file order

  // Out of line: `object` holds pairs of this (so far incomplete) type, which clang's library
  // only instantiates once JsonValue is complete.
  JsonValue();
  JsonValue(const JsonValue&);
  JsonValue(JsonValue&&) noexcept;
  JsonValue& operator=(const JsonValue&);
  JsonValue& operator=(JsonValue&&) noexcept;
  ~JsonValue();

  // The member `key` of an object, or nullptr (also when this is not an object).
  const JsonValue* Find(absl::string_view key) const;

  bool is_null() const { return type == Type::kNull; }
  bool is_bool() const { return type == Type::kBool; }
  bool is_number() const { return type == Type::kNumber; }
  bool is_string() const { return type == Type::kString; }
  bool is_array() const { return type == Type::kArray; }
  bool is_object() const { return type == Type::kObject; }
};

absl::string_view JsonTypeName(JsonValue::Type type);

absl::StatusOr<JsonValue> ParseJson(absl::string_view text);

// Compact JSON text of `value` (no whitespace; members in their order; integers exact, other
// numbers the shortest text that reads back the same, non-finite ones as null; strings with
// invalid UTF-8 replaced by U+FFFD and control characters escaped). ParseJson reads it back to an
// equal tree. Recursion is bounded by the 64-level nesting ParseJson allows.
std::string JsonToText(const JsonValue& value);

}  // namespace kvserve::base

#endif  // KVSERVE_BASE_JSON_H_
