#include "base/json.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/utf8.h"

namespace kvserve::base {

JsonValue::JsonValue() = default;
JsonValue::JsonValue(const JsonValue&) = default;
JsonValue::JsonValue(JsonValue&&) noexcept = default;
JsonValue& JsonValue::operator=(const JsonValue&) = default;
JsonValue& JsonValue::operator=(JsonValue&&) noexcept = default;
JsonValue::~JsonValue() = default;
namespace {

// Parsing needs no stack (see ParseValue), but the tree's destructor and its readers recurse
// once per level; 64 levels cost them a few KiB and no real document comes close.
constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(absl::string_view text) : s_(text) {}

  absl::StatusOr<JsonValue> ParseDocument() {
    JsonValue v;
    absl::Status st = ParseValue(&v);
    if (!st.ok()) return st;
    SkipSpace();
    if (pos_ != s_.size()) return Error("unexpected text after the JSON value");
    return v;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("JSON: ", what, " at offset ", pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Literal(absl::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // The value starting at pos_, for scalars; containers are opened by the caller's loop.
  absl::Status ParseScalar(JsonValue* v) {
    const char c = s_[pos_];
    if (c == '"') {
      v->type = JsonValue::Type::kString;
      return ParseString(&v->string);
    }
    if (Literal("true")) {
      v->type = JsonValue::Type::kBool;
      v->boolean = true;
      return absl::OkStatus();
    }
    if (Literal("false")) {
      v->type = JsonValue::Type::kBool;
      return absl::OkStatus();
    }
    if (Literal("null")) {
      v->type = JsonValue::Type::kNull;
      return absl::OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(v);
    return Error(absl::StrCat("unexpected character '", std::string(1, c), "'"));
  }

  // `"key" :` of an object member, leaving pos_ at its value.
  absl::Status ParseMemberKey(std::string* key) {
    SkipSpace();
    if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a string key");
    absl::Status st = ParseString(key);
    if (!st.ok()) return st;
    SkipSpace();
    if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':'");
    ++pos_;
    return absl::OkStatus();
  }

  // The next slot of the innermost open container (after its key, for objects).
  absl::StatusOr<JsonValue*> NextSlot(JsonValue* container) {
    if (container->is_array()) return &container->array.emplace_back();
    std::string key;
    absl::Status st = ParseMemberKey(&key);
    if (!st.ok()) return st;
    return &container->object.emplace_back(std::move(key), JsonValue()).second;
  }

  // Parses one value into *root without recursion: `open` holds the containers entered and not
  // yet closed (innermost last). Each holds the last element of its parent, and a parent grows
  // only after its child closed, so the pointers stay valid.
  absl::Status ParseValue(JsonValue* root) {
    std::vector<JsonValue*> open;
    JsonValue* slot = root;  // where the next value goes; null after a value, until ',' or a close
    while (true) {
      if (slot != nullptr) {
        SkipSpace();
        if (pos_ >= s_.size()) return Error("unexpected end of text");
        const char c = s_[pos_];
        if (c != '{' && c != '[') {
          absl::Status st = ParseScalar(slot);
          if (!st.ok()) return st;
          slot = nullptr;
        } else {
          if (static_cast<int>(open.size()) >= kMaxDepth) {
            return Error(absl::StrCat("nesting deeper than ", kMaxDepth, " levels"));
          }
          slot->type = c == '{' ? JsonValue::Type::kObject : JsonValue::Type::kArray;
          open.push_back(slot);
          ++pos_;
          SkipSpace();
          const char close = c == '{' ? '}' : ']';
          if (pos_ < s_.size() && s_[pos_] == close) {
            ++pos_;
            open.pop_back();
            slot = nullptr;
          } else {
            absl::StatusOr<JsonValue*> next = NextSlot(open.back());
            if (!next.ok()) return next.status();
            slot = *next;
            continue;
          }
        }
      }
      // A value just ended: continue or close the innermost container.
      if (open.empty()) return absl::OkStatus();
      JsonValue* container = open.back();
      const char close = container->is_object() ? '}' : ']';
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        absl::StatusOr<JsonValue*> next = NextSlot(container);
        if (!next.ok()) return next.status();
        slot = *next;
      } else if (pos_ < s_.size() && s_[pos_] == close) {
        ++pos_;
        open.pop_back();
      } else {
        return Error(container->is_object() ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  }

  absl::StatusOr<uint32_t> Hex4() {
    if (pos_ + 4 > s_.size()) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return Error("bad hex digit in \\u escape");
    }
    return v;
  }

  absl::Status ParseString(std::string* out) {
    ++pos_;  // '"'
    while (true) {
      if (pos_ >= s_.size()) return Error("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= s_.size()) return Error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          *out += '"';
          break;
        case '\\':
          *out += '\\';
          break;
        case '/':
          *out += '/';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'u': {
          absl::StatusOr<uint32_t> cp = Hex4();
          if (!cp.ok()) return cp.status();
          uint32_t code = *cp;
          if (code >= 0xD800 && code < 0xDC00 && s_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            absl::StatusOr<uint32_t> lo = Hex4();
            if (!lo.ok()) return lo.status();
            if (*lo < 0xDC00 || *lo >= 0xE000) return Error("unpaired surrogate in \\u escape");
            code = 0x10000 + ((code - 0xD800) << 10) + (*lo - 0xDC00);
          } else if (code >= 0xD800 && code < 0xE000) {
            return Error("unpaired surrogate in \\u escape");
          }
          AppendUtf8(code, out);
          break;
        }
        default:
          return Error("unknown escape");
      }
    }
  }

  absl::Status ParseNumber(JsonValue* v) {
    const size_t start = pos_;
    bool integral = true;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > d;
    };
    if (!digits()) return Error("malformed number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digits()) return Error("malformed number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Error("malformed number");
    }
    const std::string text(s_.substr(start, pos_ - start));
    v->type = JsonValue::Type::kNumber;
    v->number = std::strtod(text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      const long long i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0) {
        v->is_integer = true;
        v->integer = i;
      }
    }
    return absl::OkStatus();
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

const JsonValue* JsonValue::Find(absl::string_view key) const {
  for (const auto& [k, v] : object) {
    if (k == key) return &v;
  }
  return nullptr;
}

absl::string_view JsonTypeName(JsonValue::Type type) {
  switch (type) {
    case JsonValue::Type::kNull:
      return "null";
    case JsonValue::Type::kBool:
      return "a boolean";
    case JsonValue::Type::kNumber:
      return "a number";
    case JsonValue::Type::kString:
      return "a string";
    case JsonValue::Type::kArray:
      return "an array";
    case JsonValue::Type::kObject:
      return "an object";
  }
  return "unknown";
}

absl::StatusOr<JsonValue> ParseJson(absl::string_view text) { return Parser(text).ParseDocument(); }

namespace {

void AppendQuoted(absl::string_view raw, std::string* out) {
  const std::string text = SanitizeUtf8(raw);
  out->push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendJson(const JsonValue& v, std::string* out) {
  switch (v.type) {
    case JsonValue::Type::kNull:
      *out += "null";
      return;
    case JsonValue::Type::kBool:
      *out += v.boolean ? "true" : "false";
      return;
    case JsonValue::Type::kNumber: {
      if (v.is_integer) {
        *out += std::to_string(v.integer);
      } else if (!std::isfinite(v.number)) {
        *out += "null";
      } else {
        char buf[32];
        const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v.number);
        out->append(buf, r.ptr);
      }
      return;
    }
    case JsonValue::Type::kString:
      AppendQuoted(v.string, out);
      return;
    case JsonValue::Type::kArray:
      out->push_back('[');
      for (size_t i = 0; i < v.array.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJson(v.array[i], out);
      }
      out->push_back(']');
      return;
    case JsonValue::Type::kObject:
      out->push_back('{');
      for (size_t i = 0; i < v.object.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendQuoted(v.object[i].first, out);
        out->push_back(':');
        AppendJson(v.object[i].second, out);
      }
      out->push_back('}');
      return;
  }
}

}  // namespace

std::string JsonToText(const JsonValue& value) {
  std::string out;
  AppendJson(value, &out);
  return out;
}

}  // namespace kvserve::base
