// A small JSON reader (RFC 8259) for model metadata files: tokenizer.json, tokenizer_config.json,
// config.json. Parses the whole text into a tree of JsonValue.
//
// Ownership: a JsonValue owns its children by value. Thread-safety: immutable values may be read
// concurrently.
#ifndef KVSERVE_ENGINE_JSON_H_
#define KVSERVE_ENGINE_JSON_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace kvserve::engine {

class JsonValue {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  // Accessors return a default (false, 0, "", empty) when the kind differs.
  bool bool_value() const { return bool_; }
  double number() const { return number_; }
  const std::string& string() const { return string_; }
  const std::vector<JsonValue>& array() const { return array_; }
  // Members in document order; duplicate keys are kept (Find returns the last).
  const std::vector<std::pair<std::string, JsonValue>>& object() const { return object_; }

  // The member named `key` of an object; nullptr when absent or not an object.
  const JsonValue* Find(std::string_view key) const;

 private:
  friend class JsonParser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<JsonValue> array_;
  std::vector<std::pair<std::string, JsonValue>> object_;
};

// Parses one JSON document (surrounding whitespace allowed). Strings are returned as UTF-8, with
// \uXXXX escapes decoded (surrogate pairs joined). Errors are InvalidArgument and give the byte
// offset of the problem.
absl::StatusOr<JsonValue> ParseJson(std::string_view text);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_JSON_H_
