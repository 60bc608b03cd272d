// Template: a parsed Jinja template of kvserve's subset and its tree-walking interpreter.
//
// Semantics follow jinja2 3.1 with Python values (see value.h): `set` inside a for loop stays
// in that iteration; namespace() attributes are the way to carry state out of loops; `and`/`or`
// return an operand; attribute access falls back to item access and vice versa, and a missing
// member is undefined (an error only when undefined is used as an object, number or JSON).
// jinja2's globals range(), dict() and namespace() are built in; the caller adds its own
// (messages, bos_token, raise_exception, ...).
//
// Filters: abs capitalize count d default dictsort first float int items join last length list
// lower map max min reject rejectattr replace reverse safe select selectattr string sum title
// tojson trim unique upper wordcount. Methods: str strip lstrip rstrip split startswith endswith
// upper lower title capitalize replace find count join format; dict get items keys values.
// Case mapping (upper/lower/title/capitalize) uses ICU's Unicode data, as Python does.
//
// Ownership: a Template owns its tree. Thread-safety: Render is const and may run concurrently.
#ifndef KVSERVE_SERVER_MODELS_JINJA_INTERPRETER_H_
#define KVSERVE_SERVER_MODELS_JINJA_INTERPRETER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/models/jinja/lexer.h"
#include "server/models/jinja/parser.h"
#include "server/models/jinja/value.h"

namespace kvserve::server::jinja {

class Template {
 public:
  // Errors: InvalidArgument from the lexer or the parser, naming the problem and its line.
  static absl::StatusOr<Template> Parse(std::string_view source, const LexerOptions& options = {});

  // Renders with `globals` as the outermost variables. Errors: InvalidArgument naming the
  // failing operation and its line; statuses returned by callables pass through unchanged.
  absl::StatusOr<std::string> Render(const ValueDict& globals) const;

 private:
  Body body_;
};

}  // namespace kvserve::server::jinja

#endif  // KVSERVE_SERVER_MODELS_JINJA_INTERPRETER_H_
