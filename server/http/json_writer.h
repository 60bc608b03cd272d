// JsonWriter: builds one compact JSON text (no whitespace) for HTTP responses.
//
// Strings are written as valid UTF-8 whatever bytes they hold: each byte that is not part of a
// well-formed UTF-8 character becomes U+FFFD, so model output that splits a character (or a
// token piece that is half a character) never yields invalid JSON. Control characters, '"' and
// '\' are escaped; everything else is written as is. Non-finite numbers (JSON has none) are
// written as null.
//
// Usage: w.BeginObject().Key("a").Int(1).Key("b").BeginArray().String("x").EndArray().EndObject();
// the writer places the commas. Misuse (a value where a key is due, unbalanced ends) is the
// caller's bug and is not diagnosed.
//
// Ownership: plain value type. Thread-safety: none.
#ifndef KVSERVE_SERVER_HTTP_JSON_WRITER_H_
#define KVSERVE_SERVER_HTTP_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kvserve::server {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Double(double value);  // shortest text that reads back as the same double
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // An already-serialized JSON value, inserted as is.
  JsonWriter& Raw(absl::string_view json);

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void BeforeValue();

  std::string out_;
  // One entry per open object/array: true until its first element is written.
  std::vector<bool> first_;
  bool after_key_ = false;
};

// `value` as a quoted JSON string (see the class comment for the escaping rules).
std::string JsonQuote(absl::string_view value);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_HTTP_JSON_WRITER_H_
