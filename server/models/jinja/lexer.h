// Lexer of kvserve's Jinja subset: template text → tokens, with jinja2's whitespace rules
// applied to the text between tags, so the parser never sees them:
//   - newlines (\r\n, \r, \n) become \n, and one trailing newline of the template is dropped
//     (jinja2's keep_trailing_newline=False);
//   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after it;
//   - trim_blocks: the first newline after a `%}` or `#}` is dropped (not after `}}`, nor `+%}`);
//   - lstrip_blocks: spaces and tabs from the start of a line up to a `{%` or `{#` are dropped
//     (not before `{{`, nor before `{%+`).
// As in jinja2, a `}}` or `%}` inside open brackets of an expression does not end the tag.
//
// Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_MODELS_JINJA_LEXER_H_
#define KVSERVE_SERVER_MODELS_JINJA_LEXER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kvserve::server::jinja {

struct Token {
  enum class Kind {
    kText,        // template text between tags (whitespace control already applied)
    kPrintBegin,  // {{
    kPrintEnd,    // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,        // identifiers and keywords (and, or, not, in, is, if, else, true, ...)
    kString,      // literal, escapes decoded
    kInt,
    kFloat,
    kOperator,  // + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { }
    kEnd,       // end of template
  };
  Kind kind;
  std::string text;  // text, name, decoded string or operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

struct LexerOptions {
  bool trim_blocks = true;    // transformers renders with trim_blocks=True ...
  bool lstrip_blocks = true;  // ... and lstrip_blocks=True
};

// Errors: InvalidArgument naming the problem and its line (unterminated tag, comment or
// string, an unexpected character or bracket).
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source, const LexerOptions& options);

}  // namespace kvserve::server::jinja

#endif  // KVSERVE_SERVER_MODELS_JINJA_LEXER_H_
