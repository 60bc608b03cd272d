// Regular expressions compiled to GBNF (grammar.h), for structured output: a grammar whose
// `root` derives exactly the strings the pattern matches in full.
//
// Accepted syntax (a common subset of ECMAScript, PCRE and Python):
//   literals (UTF-8 text; every byte must be well-formed UTF-8)
//   .            any code point except \n
//   \d \w \s     [0-9], [A-Za-z0-9_], [ \t\n\r\f\v] (ASCII only); \D \W \S their complements
//   \n \r \t \f \v \0   the control characters (\0 followed by a digit is refused: octal)
//   \xHH \uHHHH  a code point by its hex value;  \ + any ASCII punctuation: that character
//   [...] [^...] classes with ranges and the escapes above (\b inside a class is backspace);
//                `]` first in a class and `-` first or last are literals
//   ( )  (?: )  (?<name> )  (?P<name> )   groups (captures do not matter to a grammar)
//   a|b          alternation (an empty alternative matches the empty string)
//   * + ? {m} {m,} {m,n} {,n}   quantifiers (counts at most 1000), and their lazy forms *? +?
//                ?? {m,n}? (same language); `{` that does not start a quantifier is a literal
//   ^ first and $ last are accepted and ignored (matches are always full)
// Refused, as InvalidArgument "regex at offset N: ..." (N is the byte offset in the pattern):
// backreferences (\1, \k<name>), lookaround ((?= (?! (?<= (?<!), inline flags and other (?...
// forms, \b \B \A \z \Z \G, ^ or $ anywhere else, possessive quantifiers (a*+), quantifiers
// with nothing to repeat, unbalanced parentheses, unterminated classes, reversed ranges (z-a),
// counts over 1000 or {m,n} with m > n, classes that match nothing ([^\s\S], \uD800), other escapes
// (\p{..}, \c, ...), groups nested more than 64 deep (or deeper than the thread's stack allows:
// about 29 on a 100 KiB stack). The empty pattern matches the empty string.
// Differences from ECMAScript: `.` also matches \r, U+2028 and U+2029; \s is ASCII only (so \S
// also matches U+00A0 and the other Unicode spaces).
//
// Thread-safety: pure functions.
#ifndef KVSERVE_CONSTRAIN_REGEX_H_
#define KVSERVE_CONSTRAIN_REGEX_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::constrain {

// How the characters the pattern matches are written in the text the grammar derives.
enum class RegexCharEncoding {
  // As their UTF-8 bytes.
  kRaw,
  // As the content of a JSON string literal (the pattern applies to the decoded string): `"` as
  // \", `\` as \\, `/` raw or as \/, control characters as \uXXXX (hex digits in either case)
  // or their short escape (\b \t \n \f \r); every other code point only raw (its \uXXXX form, and
  // surrogate pairs, are not derived).
  kJsonString,
};

// A complete GBNF grammar (rule `root` only) whose sentences are the full matches of `pattern`.
absl::StatusOr<std::string> RegexToGbnf(absl::string_view pattern);

// One GBNF item (a literal, a class or a parenthesized group; no rule references) matching the
// full matches of `pattern`, written as `encoding` says, for embedding into a larger grammar
// (json_schema.h uses it for "pattern"). Errors as RegexToGbnf.
absl::StatusOr<std::string> RegexToGbnfExpression(absl::string_view pattern,
                                                  RegexCharEncoding encoding);

// `text` (UTF-8) as a GBNF literal: quoted, with `"` and `\` backslash-escaped, \n \r \t, and
// every other control, `#` and non-ASCII code point as \uHHHH / \UHHHHHHHH. Bytes that are not
// well-formed UTF-8 become U+FFFD.
std::string GbnfLiteral(absl::string_view text);

}  // namespace kvserve::constrain

#endif  // KVSERVE_CONSTRAIN_REGEX_H_
