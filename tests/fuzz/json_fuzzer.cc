// Fuzzes base::ParseJson, the reader behind every JSON input (HTTP bodies, config.json,
// tokenizer.json, safetensors headers). Any input must give a tree or an error, never a crash
// or an overflowed stack; an accepted document written back out must parse to the same tree.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/json.h"
#include "tests/fuzz/fuzz_support.h"

namespace kvserve::fuzz {
namespace {

using base::JsonValue;

// JSON text for `v` (strings as raw bytes, quotes, backslashes and control characters escaped).
// False when `v` holds a number that JSON cannot spell (not finite).
bool Write(const JsonValue& v, std::string* out) {
  switch (v.type) {
    case JsonValue::Type::kNull:
      *out += "null";
      return true;
    case JsonValue::Type::kBool:
      *out += v.boolean ? "true" : "false";
      return true;
    case JsonValue::Type::kNumber: {
      if (v.is_integer) {
        *out += std::to_string(v.integer);
        return true;
      }
      if (!std::isfinite(v.number)) return false;
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", v.number);
      std::string text = buf;
      // Keep it a non-integer literal, as it was read.
      if (text.find_first_of(".eE") == std::string::npos) text += ".0";
      *out += text;
      return true;
    }
    case JsonValue::Type::kString:
      *out += '"';
      for (const char c : v.string) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
          *out += '\\';
          *out += c;
        } else if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          *out += buf;
        } else {
          *out += c;
        }
      }
      *out += '"';
      return true;
    case JsonValue::Type::kArray:
      *out += '[';
      for (size_t i = 0; i < v.array.size(); ++i) {
        if (i > 0) *out += ',';
        if (!Write(v.array[i], out)) return false;
      }
      *out += ']';
      return true;
    case JsonValue::Type::kObject:
      *out += '{';
      for (size_t i = 0; i < v.object.size(); ++i) {
        if (i > 0) *out += ',';
        JsonValue key;
        key.type = JsonValue::Type::kString;
        key.string = v.object[i].first;
        Write(key, out);
        *out += ':';
        if (!Write(v.object[i].second, out)) return false;
      }
      *out += '}';
      return true;
  }
  return false;
}

bool Same(const JsonValue& a, const JsonValue& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case JsonValue::Type::kNull:
      return true;
    case JsonValue::Type::kBool:
      return a.boolean == b.boolean;
    case JsonValue::Type::kNumber:
      if (a.is_integer != b.is_integer) return false;
      return a.is_integer ? a.integer == b.integer : a.number == b.number;
    case JsonValue::Type::kString:
      return a.string == b.string;
    case JsonValue::Type::kArray:
      if (a.array.size() != b.array.size()) return false;
      for (size_t i = 0; i < a.array.size(); ++i) {
        if (!Same(a.array[i], b.array[i])) return false;
      }
      return true;
    case JsonValue::Type::kObject:
      if (a.object.size() != b.object.size()) return false;
      for (size_t i = 0; i < a.object.size(); ++i) {
        if (a.object[i].first != b.object[i].first) return false;
        if (!Same(a.object[i].second, b.object[i].second)) return false;
      }
      return true;
  }
  return false;
}

}  // namespace
}  // namespace kvserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  absl::StatusOr<base::JsonValue> parsed =
      base::ParseJson(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) return 0;
  std::string again;
  if (!fuzz::Write(*parsed, &again)) return 0;
  absl::StatusOr<base::JsonValue> reparsed = base::ParseJson(again);
  fuzz::FuzzCheck(reparsed.ok(), "a document written back from its tree does not parse");
  fuzz::FuzzCheck(fuzz::Same(*parsed, *reparsed), "a document written back parses differently");
  return 0;
}
