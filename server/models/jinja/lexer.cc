#include "server/models/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/utf8.h"
#include "server/models/jinja/value.h"

namespace kvserve::server::jinja {
namespace {

absl::Status LexError(int line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
}

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Length of the Python-whitespace prefix (\s) of `s` starting at `pos`, in bytes.
size_t WhitespaceRun(std::string_view s, size_t pos) {
  size_t end = pos;
  while (end < s.size()) {
    std::vector<std::string_view> cps = SplitCodePoints(s.substr(end, 4));
    if (cps.empty() || !IsPythonSpace(cps[0])) break;
    end += cps[0].size();
  }
  return end - pos;
}

// `s` without trailing Python whitespace (str.rstrip()).
std::string_view RStripSpace(std::string_view s) {
  std::vector<std::string_view> cps = SplitCodePoints(s);
  size_t keep = s.size();
  for (size_t i = cps.size(); i > 0 && IsPythonSpace(cps[i - 1]); --i) keep -= cps[i - 1].size();
  return s.substr(0, keep);
}

int CountNewlines(std::string_view s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// Python's unicode-escape decoding of a string literal's body (jinja2 decodes literals so).
absl::StatusOr<std::string> DecodeEscapes(std::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out += body[i];
      continue;
    }
    const char c = body[++i];
    auto hex = [&](int digits) -> absl::StatusOr<uint32_t> {
      if (i + digits >= body.size()) {
        return LexError(line, "truncated \\x, \\u or \\U escape in a string literal");
      }
      uint32_t v = 0;
      for (int k = 1; k <= digits; ++k) {
        const char h = body[i + k];
        if (!std::isxdigit(static_cast<unsigned char>(h))) {
          return LexError(line, "truncated \\x, \\u or \\U escape in a string literal");
        }
        v = v * 16 +
            (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
      }
      i += digits;
      return v;
    };
    switch (c) {
      case '\n':
        break;  // line continuation
      case '\\':
      case '\'':
      case '"':
        out += c;
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        absl::StatusOr<uint32_t> cp = hex(c == 'x' ? 2 : c == 'u' ? 4 : 8);
        if (!cp.ok()) return cp.status();
        if (*cp > 0x10FFFF) return LexError(line, "a \\U escape beyond U+10FFFF");
        base::AppendUtf8(*cp, &out);
        break;
      }
      case 'N':
        return LexError(line, "\\N{...} escapes are not supported");
      default:
        if (c >= '0' && c <= '7') {
          uint32_t v = c - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7';
               ++k) {
            v = v * 8 + (body[++i] - '0');
          }
          base::AppendUtf8(v, &out);
        } else {
          out += '\\';  // Python keeps unknown escapes as written
          out += c;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string source, const LexerOptions& options)
      : src_(std::move(source)), options_(options) {}

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t tag = FindTagStart(pos);
      std::string_view text = std::string_view(src_).substr(pos, tag - pos);
      if (tag == src_.size()) {
        Emit(Token::Kind::kText, std::string(text));
        break;
      }
      const char type = src_[tag + 1];
      const char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')
                            ? src_[tag + 2]
                            : '\0';
      if (sign == '-') {
        text = RStripSpace(text);
      } else if (sign != '+' && options_.lstrip_blocks && type != '{') {
        const size_t line_start = text.rfind('\n') + 1;  // npos + 1 == 0
        if (line_start > 0 || pos == 0 || src_[pos - 1] == '\n') {
          const size_t run = WhitespaceRun(text, line_start);
          if (run > 0 && line_start + run == text.size()) text = text.substr(0, line_start);
        }
      }
      if (!text.empty()) Emit(Token::Kind::kText, std::string(text));
      line_ += CountNewlines(src_.substr(pos, tag - pos));
      const size_t body = tag + 2 + (sign != '\0' ? 1 : 0);
      absl::StatusOr<size_t> next = type == '#' ? SkipComment(body) : LexTag(type, body);
      if (!next.ok()) return next.status();
      pos = *next;
    }
    Emit(Token::Kind::kEnd, "");
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t pos) const {
    for (size_t i = pos; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return src_.size();
  }

  void Emit(Token::Kind kind, std::string text) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  // Position after a tag's closing delimiter at `close` (which starts with `-`, `+` or the
  // delimiter itself), applying the whitespace rules.
  size_t AfterClose(size_t close, size_t delimiter_end, bool trims_newline) {
    size_t end = delimiter_end;
    if (src_[close] == '-') {
      end += WhitespaceRun(src_, end);
    } else if (src_[close] != '+' && trims_newline && options_.trim_blocks && end < src_.size() &&
               src_[end] == '\n') {
      ++end;
    }
    line_ += CountNewlines(std::string_view(src_).substr(close, end - close));
    return end;
  }

  absl::StatusOr<size_t> SkipComment(size_t body) {
    const size_t close = src_.find("#}", body);
    if (close == std::string::npos) return LexError(line_, "missing end of comment tag '#}'");
    size_t start = close;
    if (close > body && (src_[close - 1] == '-' || src_[close - 1] == '+')) start = close - 1;
    line_ += CountNewlines(std::string_view(src_).substr(body, start - body));
    return AfterClose(start, close + 2, /*trims_newline=*/true);
  }

  absl::StatusOr<size_t> LexTag(char type, size_t pos) {
    const bool block = type == '%';
    Emit(block ? Token::Kind::kBlockBegin : Token::Kind::kPrintBegin, block ? "{%" : "{{");
    const char closer = block ? '%' : '}';
    std::vector<char> brackets;
    while (true) {
      const size_t ws = WhitespaceRun(src_, pos);
      line_ += CountNewlines(std::string_view(src_).substr(pos, ws));
      pos += ws;
      if (pos >= src_.size()) {
        return LexError(
            line_, absl::StrCat("unexpected end of template: missing '", block ? "%}" : "}}", "'"));
      }
      if (brackets.empty()) {
        size_t at = pos;
        if ((src_[at] == '-' || (block && src_[at] == '+')) && at + 1 < src_.size()) ++at;
        if (src_.compare(at, 2, std::string{closer, '}'}) == 0) {
          Emit(block ? Token::Kind::kBlockEnd : Token::Kind::kPrintEnd, block ? "%}" : "}}");
          return AfterClose(pos, at + 2, /*trims_newline=*/block);
        }
      }
      const char c = src_[pos];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        absl::StatusOr<size_t> end = LexNumber(pos);
        if (!end.ok()) return end.status();
        pos = *end;
      } else if (IsNameStart(c)) {
        size_t end = pos;
        while (end < src_.size() && IsNameChar(src_[end])) ++end;
        Emit(Token::Kind::kName, src_.substr(pos, end - pos));
        pos = end;
      } else if (c == '\'' || c == '"') {
        size_t end = pos + 1;
        while (end < src_.size() && src_[end] != c) end += src_[end] == '\\' ? 2 : 1;
        if (end >= src_.size()) return LexError(line_, "unterminated string literal");
        absl::StatusOr<std::string> decoded =
            DecodeEscapes(std::string_view(src_).substr(pos + 1, end - pos - 1), line_);
        if (!decoded.ok()) return decoded.status();
        Emit(Token::Kind::kString, *std::move(decoded));
        line_ += CountNewlines(std::string_view(src_).substr(pos, end - pos));
        pos = end + 1;
      } else {
        static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (std::string_view two : kTwo) {
          if (src_.compare(pos, 2, two) == 0) op = std::string(two);
        }
        if (op.empty()) {
          if (std::string_view("+-*/%~<>=.:|,()[]{}").find(c) == std::string_view::npos) {
            return LexError(line_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") {
          brackets.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (brackets.empty() || brackets.back() != op[0]) {
            return LexError(line_, absl::StrCat("unexpected '", op, "'"));
          }
          brackets.pop_back();
        }
        Emit(Token::Kind::kOperator, op);
        pos += op.size();
      }
    }
  }

  // A number literal at `pos`; the position after it. Integers must fit int64_t (jinja2's are
  // unbounded; a template never needs more); floats too large for a double are inf, as in Python.
  absl::StatusOr<size_t> LexNumber(size_t pos) {
    auto digits = [&](size_t p) {
      while (p < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[p])) ||
                                 (src_[p] == '_' && p + 1 < src_.size() &&
                                  std::isdigit(static_cast<unsigned char>(src_[p + 1]))))) {
        ++p;
      }
      return p;
    };
    size_t end = digits(pos);
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
      end = digits(end + 1);
      is_float = true;
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t e = end + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        end = digits(e);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = pos; i < end; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token t;
    t.kind = is_float ? Token::Kind::kFloat : Token::Kind::kInt;
    t.text = text;
    t.line = line_;
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else if (!absl::SimpleAtoi(text, &t.int_value)) {
      return LexError(line_, absl::StrCat("integer literal ", text, " is out of range"));
    }
    tokens_.push_back(std::move(t));
    return end;
  }

  std::string src_;
  LexerOptions options_;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source, const LexerOptions& options) {
  // jinja2 normalizes newlines and drops one trailing newline before lexing.
  std::string normalized;
  normalized.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      normalized += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      normalized += source[i];
    }
  }
  if (!normalized.empty() && normalized.back() == '\n') normalized.pop_back();
  return Lexer(std::move(normalized), options).Run();
}

}  // namespace kvserve::server::jinja
