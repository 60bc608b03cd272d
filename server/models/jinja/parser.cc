#include "server/models/jinja/parser.h"

#include <algorithm>
#include <initializer_list>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/stack_guard.h"
#include "base/status_macros.h"

namespace kvserve::server::jinja {
namespace {

const std::set<std::string, std::less<>>& KnownFilters() {
  static const auto* filters = new std::set<std::string, std::less<>>{
      "abs",        "capitalize", "count",   "d",      "default", "first",      "float",  "int",
      "items",      "join",       "last",    "length", "list",    "lower",      "map",    "reject",
      "rejectattr", "replace",    "reverse", "safe",   "select",  "selectattr", "string", "title",
      "tojson",     "trim",       "upper",   "unique", "sum"};
  return *filters;
}

const std::set<std::string, std::less<>>& KnownTests() {
  static const auto* tests = new std::set<std::string, std::less<>>{
      "defined",  "undefined", "none",   "boolean", "true",        "false",
      "integer",  "float",     "number", "string",  "mapping",     "iterable",
      "sequence", "callable",  "odd",    "even",    "divisibleby", "eq",
      "equalto",  "==",        "ne",     "!=",      "lt",          "<",
      "lessthan", "le",        "<=",     "gt",      ">",           "greaterthan",
      "ge",       ">=",        "in",     "lower",   "upper",       "sameas"};
  return *tests;
}

// Tags jinja2 knows that this subset does not implement.
const std::set<std::string, std::less<>>& UnsupportedTags() {
  static const auto* tags = new std::set<std::string, std::less<>>{
      "include", "extends",    "block", "import", "from",      "call",       "filter", "raw",
      "with",    "autoescape", "do",    "trans",  "pluralize", "generation", "print",  "debug"};
  return *tags;
}

// Blocks inside blocks and expressions inside expressions, together: no real template comes
// near it, and it keeps parsing, rendering and destroying the tree within any stack (parsing
// also stops, with the same error, when the thread's stack runs short).
constexpr int kMaxParseNesting = 128;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

  absl::StatusOr<Body> ParseAll() {
    std::string end_tag;
    KVSERVE_ASSIGN_OR_RETURN(body, ParseBody({}, &end_tag));
    return body;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& Next() {
    const Token& t = Peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool IsOp(std::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::Kind::kOperator && Peek(ahead).text == op;
  }
  bool IsName(std::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == Token::Kind::kName && Peek(ahead).text == name;
  }
  absl::Status Error(const std::string& what) const { return Error(Peek().line, what); }
  static absl::Status Error(int line, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
  }
  std::string Describe(const Token& t) const {
    switch (t.kind) {
      case Token::Kind::kEnd:
        return "end of template";
      case Token::Kind::kBlockEnd:
        return "'%}'";
      case Token::Kind::kPrintEnd:
        return "'}}'";
      case Token::Kind::kString:
        return "a string";
      default:
        return absl::StrCat("'", t.text, "'");
    }
  }
  absl::Status ExpectOp(const std::string& op) {
    if (!IsOp(op)) return Error(absl::StrCat("expected '", op, "', got ", Describe(Peek())));
    Next();
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().kind != Token::Kind::kBlockEnd) {
      return Error(absl::StrCat("expected '%}', got ", Describe(Peek())));
    }
    Next();
    return absl::OkStatus();
  }
  // Counts one level of recursion for as long as it lives; Check() refuses one level too many.
  class Nesting {
   public:
    explicit Nesting(Parser* parser) : parser_(parser) { ++parser_->depth_; }
    ~Nesting() { --parser_->depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    absl::Status Check() const {
      if (parser_->depth_ <= kMaxParseNesting && base::StackHasRoom()) return absl::OkStatus();
      return parser_->Error(
          absl::StrCat("blocks and expressions nest deeper than ", kMaxParseNesting, " levels"));
    }

   private:
    Parser* parser_;
  };

  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != Token::Kind::kName) {
      return Error(absl::StrCat("expected a name, got ", Describe(Peek())));
    }
    return Next().text;
  }

  // Statements until a `{% name %}` with name in `ends` (consumed up to the name, which is
  // returned in `*end_tag`), or the end of the template when `ends` is empty.
  absl::StatusOr<Body> ParseBody(const std::set<std::string>& ends, std::string* end_tag) {
    const Nesting nesting(this);
    KVSERVE_RETURN_IF_ERROR(nesting.Check());
    Body body;
    while (true) {
      const Token& t = Peek();
      switch (t.kind) {
        case Token::Kind::kEnd:
          if (!ends.empty()) {
            std::string expected;
            for (const std::string& e : ends)
              absl::StrAppend(&expected, expected.empty() ? "" : " or ", "'", e, "'");
            return Error(absl::StrCat("unexpected end of template: expected ", expected));
          }
          return body;
        case Token::Kind::kText: {
          auto stmt = std::make_unique<Stmt>();
          stmt->kind = Stmt::Kind::kText;
          stmt->line = t.line;
          stmt->text = t.text;
          body.push_back(std::move(stmt));
          Next();
          break;
        }
        case Token::Kind::kPrintBegin: {
          Next();
          auto stmt = std::make_unique<Stmt>();
          stmt->kind = Stmt::Kind::kPrint;
          stmt->line = t.line;
          KVSERVE_ASSIGN_OR_RETURN(e, ParseTupleOrExpression());
          stmt->expr = std::move(e);
          if (Peek().kind != Token::Kind::kPrintEnd) {
            return Error(absl::StrCat("expected '}}', got ", Describe(Peek())));
          }
          Next();
          body.push_back(std::move(stmt));
          break;
        }
        case Token::Kind::kBlockBegin: {
          Next();
          if (Peek().kind != Token::Kind::kName) {
            return Error(absl::StrCat("expected a tag name after '{%', got ", Describe(Peek())));
          }
          const std::string name = Peek().text;
          if (ends.count(name)) {
            Next();
            *end_tag = name;
            return body;
          }
          KVSERVE_ASSIGN_OR_RETURN(stmt, ParseStatement());
          body.push_back(std::move(stmt));
          break;
        }
        default:
          return Error(absl::StrCat("unexpected ", Describe(t)));
      }
    }
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseStatement() {
    const Token& tag = Next();
    const int line = tag.line;
    const std::string& name = tag.text;
    auto stmt = std::make_unique<Stmt>();
    stmt->line = line;
    if (name == "if") {
      stmt->kind = Stmt::Kind::kIf;
      while (true) {
        KVSERVE_ASSIGN_OR_RETURN(cond, ParseExpression(true));
        KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
        std::string end;
        KVSERVE_ASSIGN_OR_RETURN(body, ParseBody({"elif", "else", "endif"}, &end));
        stmt->branches.emplace_back(std::move(cond), std::move(body));
        if (end == "elif") continue;
        if (end == "else") {
          KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
          KVSERVE_ASSIGN_OR_RETURN(else_body, ParseBody({"endif"}, &end));
          stmt->else_body = std::move(else_body);
        }
        KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
        return stmt;
      }
    }
    if (name == "for") {
      stmt->kind = Stmt::Kind::kFor;
      KVSERVE_ASSIGN_OR_RETURN(targets, ParseTargets());
      stmt->targets = std::move(targets);
      if (!IsName("in")) return Error(absl::StrCat("expected 'in' in for, got ", Describe(Peek())));
      Next();
      KVSERVE_ASSIGN_OR_RETURN(iterable, ParseTupleOrExpression(/*with_condition=*/false));
      stmt->expr = std::move(iterable);
      if (IsName("if")) {
        Next();
        KVSERVE_ASSIGN_OR_RETURN(filter, ParseExpression(true));
        stmt->loop_filter = std::move(filter);
      }
      if (IsName("recursive")) return Error("unsupported Jinja construct: recursive for loops");
      KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      KVSERVE_ASSIGN_OR_RETURN(body, ParseBody({"else", "endfor"}, &end));
      stmt->body = std::move(body);
      if (end == "else") {
        KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
        KVSERVE_ASSIGN_OR_RETURN(else_body, ParseBody({"endfor"}, &end));
        stmt->else_body = std::move(else_body);
      }
      KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (name == "set") {
      if (Peek().kind == Token::Kind::kName && IsOp(".", 1)) {
        stmt->kind = Stmt::Kind::kSet;
        stmt->targets.push_back(Next().text);
        Next();
        KVSERVE_ASSIGN_OR_RETURN(attribute, ExpectName());
        stmt->attribute = attribute;
      } else {
        KVSERVE_ASSIGN_OR_RETURN(targets, ParseTargets());
        stmt->targets = std::move(targets);
      }
      if (Peek().kind == Token::Kind::kBlockEnd) {
        if (stmt->targets.size() != 1 || !stmt->attribute.empty()) {
          return Error(line, "a block set takes one plain name");
        }
        Next();
        stmt->kind = Stmt::Kind::kSetBlock;
        std::string end;
        KVSERVE_ASSIGN_OR_RETURN(body, ParseBody({"endset"}, &end));
        stmt->body = std::move(body);
        KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
        return stmt;
      }
      stmt->kind = Stmt::Kind::kSet;
      KVSERVE_RETURN_IF_ERROR(ExpectOp("="));
      KVSERVE_ASSIGN_OR_RETURN(value, ParseTupleOrExpression());
      stmt->expr = std::move(value);
      KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (name == "macro") {
      stmt->kind = Stmt::Kind::kMacro;
      KVSERVE_ASSIGN_OR_RETURN(macro_name, ExpectName());
      stmt->name = macro_name;
      KVSERVE_RETURN_IF_ERROR(ExpectOp("("));
      KVSERVE_RETURN_IF_ERROR(
          ParseCommaSeparated(")", /*trailing_comma=*/false, [&]() -> absl::Status {
            KVSERVE_ASSIGN_OR_RETURN(param, ExpectName());
            ExprPtr default_value;
            if (IsOp("=")) {
              Next();
              KVSERVE_ASSIGN_OR_RETURN(d, ParseExpression(true));
              default_value = std::move(d);
            }
            stmt->params.emplace_back(param, std::move(default_value));
            return absl::OkStatus();
          }));
      KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      KVSERVE_ASSIGN_OR_RETURN(body, ParseBody({"endmacro"}, &end));
      stmt->body = std::move(body);
      KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (name == "break" || name == "continue") {
      stmt->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      KVSERVE_RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (UnsupportedTags().count(name)) {
      return Error(line, absl::StrCat("unsupported Jinja construct '{% ", name, " %}'"));
    }
    return Error(line, absl::StrCat("unknown tag '", name, "'"));
  }

  // `a` or `a, b` or `(a, b)`.
  absl::StatusOr<std::vector<std::string>> ParseTargets() {
    std::vector<std::string> names;
    const bool parenthesized = IsOp("(");
    if (parenthesized) Next();
    while (true) {
      KVSERVE_ASSIGN_OR_RETURN(n, ExpectName());
      names.push_back(n);
      if (!IsOp(",")) break;
      Next();
    }
    if (parenthesized) KVSERVE_RETURN_IF_ERROR(ExpectOp(")"));
    return names;
  }

  ExprPtr MakeExpr(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // An expression, or several separated by commas (a tuple).
  absl::StatusOr<ExprPtr> ParseTupleOrExpression(bool with_condition = true) {
    const int line = Peek().line;
    KVSERVE_ASSIGN_OR_RETURN(first, ParseExpression(with_condition));
    if (!IsOp(",")) return first;
    ExprPtr tuple = MakeExpr(Expr::Kind::kList, line);
    tuple->args.push_back(std::move(first));
    while (IsOp(",")) {
      Next();
      if (Peek().kind == Token::Kind::kBlockEnd || Peek().kind == Token::Kind::kPrintEnd) break;
      KVSERVE_ASSIGN_OR_RETURN(item, ParseExpression(with_condition));
      tuple->args.push_back(std::move(item));
    }
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condition) {
    const Nesting nesting(this);
    KVSERVE_RETURN_IF_ERROR(nesting.Check());
    const int line = Peek().line;
    KVSERVE_ASSIGN_OR_RETURN(value, ParseOr());
    if (!with_condition) return value;
    while (IsName("if")) {
      Next();
      ExprPtr cond = MakeExpr(Expr::Kind::kCondition, line);
      KVSERVE_ASSIGN_OR_RETURN(test, ParseOr());
      cond->a = std::move(test);
      cond->b = std::move(value);
      if (IsName("else")) {
        Next();
        KVSERVE_ASSIGN_OR_RETURN(other, ParseExpression(true));
        cond->c = std::move(other);
      }
      value = std::move(cond);
    }
    return value;
  }

  ExprPtr Binary(std::string op, ExprPtr a, ExprPtr b, int line) {
    ExprPtr e = MakeExpr(Expr::Kind::kBinary, line);
    e->name = std::move(op);
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  // One left-associative level of binary operators: operand (op operand)*. `keywords`: the
  // operators are names ("and", "or") rather than operator tokens.
  using Level = absl::StatusOr<ExprPtr> (Parser::*)();
  absl::StatusOr<ExprPtr> ParseLeftAssociative(std::initializer_list<std::string_view> ops,
                                               bool keywords, Level operand) {
    KVSERVE_ASSIGN_OR_RETURN(left, (this->*operand)());
    for (;;) {
      auto matches = [&](std::string_view op) { return keywords ? IsName(op) : IsOp(op); };
      auto op = std::find_if(ops.begin(), ops.end(), matches);
      if (op == ops.end()) return left;
      const int line = Next().line;
      KVSERVE_ASSIGN_OR_RETURN(right, (this->*operand)());
      left = Binary(std::string(*op), std::move(left), std::move(right), line);
    }
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    return ParseLeftAssociative({"or"}, true, &Parser::ParseAnd);
  }
  absl::StatusOr<ExprPtr> ParseAnd() {
    return ParseLeftAssociative({"and"}, true, &Parser::ParseNot);
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    const Nesting nesting(this);
    KVSERVE_RETURN_IF_ERROR(nesting.Check());
    if (IsName("not")) {
      const int line = Next().line;
      KVSERVE_ASSIGN_OR_RETURN(operand, ParseNot());
      ExprPtr e = MakeExpr(Expr::Kind::kUnary, line);
      e->name = "not";
      e->a = std::move(operand);
      return e;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    const int line = Peek().line;
    KVSERVE_ASSIGN_OR_RETURN(left, ParseMath1());
    // Chains (a < b < c) become (a < b) and (b < c) in jinja2; chat templates do not chain, so
    // a chain is rejected rather than evaluated twice.
    static const std::set<std::string, std::less<>> kOps = {"==", "!=", "<", "<=", ">", ">="};
    std::string op;
    if (Peek().kind == Token::Kind::kOperator && kOps.count(Peek().text)) {
      op = Next().text;
    } else if (IsName("in")) {
      Next();
      op = "in";
    } else if (IsName("not") && IsName("in", 1)) {
      Next();
      Next();
      op = "notin";
    } else {
      return left;
    }
    KVSERVE_ASSIGN_OR_RETURN(right, ParseMath1());
    if ((Peek().kind == Token::Kind::kOperator && kOps.count(Peek().text)) || IsName("in") ||
        (IsName("not") && IsName("in", 1))) {
      return Error("unsupported Jinja construct: chained comparisons");
    }
    return Binary(op, std::move(left), std::move(right), line);
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
    return ParseLeftAssociative({"+", "-"}, false, &Parser::ParseConcat);
  }
  absl::StatusOr<ExprPtr> ParseConcat() {
    return ParseLeftAssociative({"~"}, false, &Parser::ParseMath2);
  }
  absl::StatusOr<ExprPtr> ParseMath2() {
    return ParseLeftAssociative({"*", "/", "//", "%"}, false, &Parser::ParsePow);
  }
  absl::StatusOr<ExprPtr> ParsePow() {
    return ParseLeftAssociative({"**"}, false, &Parser::ParsePowOperand);
  }
  absl::StatusOr<ExprPtr> ParsePowOperand() { return ParseUnary(true); }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    const Nesting nesting(this);
    KVSERVE_RETURN_IF_ERROR(nesting.Check());
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const Token& op = Next();
      KVSERVE_ASSIGN_OR_RETURN(operand, ParseUnary(false));
      node = MakeExpr(Expr::Kind::kUnary, op.line);
      node->name = op.text;
      node->a = std::move(operand);
    } else {
      KVSERVE_ASSIGN_OR_RETURN(primary, ParsePrimary());
      node = std::move(primary);
    }
    KVSERVE_ASSIGN_OR_RETURN(postfix, ParsePostfix(std::move(node)));
    node = std::move(postfix);
    if (with_filter) {
      KVSERVE_ASSIGN_OR_RETURN(filtered, ParseFilterChain(std::move(node)));
      node = std::move(filtered);
    }
    return node;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case Token::Kind::kName: {
        Next();
        ExprPtr e = MakeExpr(Expr::Kind::kLiteral, t.line);
        if (t.text == "true" || t.text == "True") {
          e->literal = Value::Bool(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value::Bool(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case Token::Kind::kString: {
        std::string s;
        while (Peek().kind == Token::Kind::kString) s += Next().text;  // "a" "b" == "ab"
        ExprPtr e = MakeExpr(Expr::Kind::kLiteral, t.line);
        e->literal = Value::String(std::move(s));
        return e;
      }
      case Token::Kind::kInt:
      case Token::Kind::kFloat: {
        Next();
        ExprPtr e = MakeExpr(Expr::Kind::kLiteral, t.line);
        e->literal =
            t.kind == Token::Kind::kInt ? Value::Int(t.int_value) : Value::Float(t.float_value);
        return e;
      }
      case Token::Kind::kOperator:
        if (t.text == "(") {
          Next();
          if (IsOp(")")) {  // empty tuple
            Next();
            return MakeExpr(Expr::Kind::kList, t.line);
          }
          KVSERVE_ASSIGN_OR_RETURN(inner, ParseTupleOrExpression());
          KVSERVE_RETURN_IF_ERROR(ExpectOp(")"));
          return inner;
        }
        if (t.text == "[") {
          Next();
          ExprPtr list = MakeExpr(Expr::Kind::kList, t.line);
          KVSERVE_RETURN_IF_ERROR(ParseCommaSeparated("]", true, [&]() -> absl::Status {
            KVSERVE_ASSIGN_OR_RETURN(item, ParseExpression(true));
            list->args.push_back(std::move(item));
            return absl::OkStatus();
          }));
          return list;
        }
        if (t.text == "{") {
          Next();
          ExprPtr dict = MakeExpr(Expr::Kind::kDict, t.line);
          KVSERVE_RETURN_IF_ERROR(ParseCommaSeparated("}", true, [&]() -> absl::Status {
            KVSERVE_ASSIGN_OR_RETURN(key, ParseExpression(true));
            KVSERVE_RETURN_IF_ERROR(ExpectOp(":"));
            KVSERVE_ASSIGN_OR_RETURN(value, ParseExpression(true));
            dict->dict_items.emplace_back(std::move(key), std::move(value));
            return absl::OkStatus();
          }));
          return dict;
        }
        break;
      default:
        break;
    }
    return Error(absl::StrCat("unexpected ", Describe(t), " in an expression"));
  }

  absl::Status ParseCallArgs(Expr* call) {
    KVSERVE_RETURN_IF_ERROR(ExpectOp("("));
    return ParseCommaSeparated(")", true, [&]() -> absl::Status {
      if (IsOp("*") || IsOp("**")) return Error("unsupported Jinja construct: *args / **kwargs");
      if (Peek().kind == Token::Kind::kName && IsOp("=", 1)) {
        std::string key = Next().text;
        Next();
        KVSERVE_ASSIGN_OR_RETURN(value, ParseExpression(true));
        call->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!call->kwargs.empty()) return Error("a positional argument after a keyword argument");
        KVSERVE_ASSIGN_OR_RETURN(value, ParseExpression(true));
        call->args.push_back(std::move(value));
      }
      return absl::OkStatus();
    });
  }

  // Parses `item` up to the operator `close`, comma-separated, then consumes `close` (the opener
  // is already consumed). jinja2 accepts a trailing comma in lists, dicts and calls, not in macro
  // signatures.
  template <typename ParseItem>
  absl::Status ParseCommaSeparated(std::string_view close, bool trailing_comma, ParseItem item) {
    for (bool first = true; !IsOp(close); first = false) {
      if (!first) {
        KVSERVE_RETURN_IF_ERROR(ExpectOp(","));
        if (trailing_comma && IsOp(close)) break;
      }
      KVSERVE_RETURN_IF_ERROR(item());
    }
    Next();
    return absl::OkStatus();
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      const int line = Peek().line;
      if (IsOp(".")) {
        Next();
        if (Peek().kind == Token::Kind::kInt) {  // foo.0 is foo[0]
          ExprPtr index = MakeExpr(Expr::Kind::kLiteral, line);
          index->literal = Value::Int(Next().int_value);
          ExprPtr item = MakeExpr(Expr::Kind::kGetItem, line);
          item->a = std::move(node);
          item->b = std::move(index);
          node = std::move(item);
          continue;
        }
        KVSERVE_ASSIGN_OR_RETURN(attr, ExpectName());
        ExprPtr e = MakeExpr(Expr::Kind::kGetAttr, line);
        e->a = std::move(node);
        e->name = attr;
        node = std::move(e);
      } else if (IsOp("[")) {
        Next();
        ExprPtr parts[3];
        int colons = 0;
        while (!IsOp("]")) {
          if (IsOp(":")) {
            Next();
            if (++colons > 2) return Error("too many ':' in a slice");
            continue;
          }
          if (parts[colons] != nullptr)
            return Error(absl::StrCat("expected ']' or ':', got ", Describe(Peek())));
          KVSERVE_ASSIGN_OR_RETURN(part, ParseExpression(true));
          parts[colons] = std::move(part);
        }
        Next();
        if (colons == 0) {
          if (parts[0] == nullptr) return Error(line, "empty subscript '[]'");
          ExprPtr e = MakeExpr(Expr::Kind::kGetItem, line);
          e->a = std::move(node);
          e->b = std::move(parts[0]);
          node = std::move(e);
        } else {
          ExprPtr e = MakeExpr(Expr::Kind::kSlice, line);
          e->args.push_back(std::move(node));
          for (ExprPtr& part : parts) e->args.push_back(std::move(part));
          node = std::move(e);
        }
      } else if (IsOp("(")) {
        ExprPtr call = MakeExpr(Expr::Kind::kCall, line);
        call->a = std::move(node);
        KVSERVE_RETURN_IF_ERROR(ParseCallArgs(call.get()));
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseFilterChain(ExprPtr node) {
    while (true) {
      const int line = Peek().line;
      if (IsOp("|")) {
        Next();
        KVSERVE_ASSIGN_OR_RETURN(name, ExpectName());
        if (!KnownFilters().count(name)) {
          return Error(line, absl::StrCat("unsupported Jinja filter '", name, "'"));
        }
        ExprPtr f = MakeExpr(Expr::Kind::kFilter, line);
        f->name = name;
        f->a = std::move(node);
        if (IsOp("(")) KVSERVE_RETURN_IF_ERROR(ParseCallArgs(f.get()));
        node = std::move(f);
      } else if (IsName("is")) {
        Next();
        ExprPtr t = MakeExpr(Expr::Kind::kTest, line);
        if (IsName("not")) {
          Next();
          t->negated = true;
        }
        std::string name;
        if (Peek().kind == Token::Kind::kName) {
          name = Next().text;
        } else if (Peek().kind == Token::Kind::kOperator) {
          name = Next().text;  // `is ==`, `is <` ...
        }
        if (!KnownTests().count(name)) {
          return Error(line, absl::StrCat("unsupported Jinja test '", name, "'"));
        }
        t->name = name;
        t->a = std::move(node);
        if (IsOp("(")) {
          KVSERVE_RETURN_IF_ERROR(ParseCallArgs(t.get()));
        } else {
          // `x is divisibleby 3`: one argument without parentheses.
          const Token& next = Peek();
          const bool starts_argument =
              next.kind == Token::Kind::kString || next.kind == Token::Kind::kInt ||
              next.kind == Token::Kind::kFloat || IsOp("[") || IsOp("{") ||
              (next.kind == Token::Kind::kName && next.text != "else" && next.text != "or" &&
               next.text != "and" && next.text != "if" && next.text != "is" && next.text != "in" &&
               next.text != "not");
          if (starts_argument) {
            KVSERVE_ASSIGN_OR_RETURN(arg, ParsePrimary());
            KVSERVE_ASSIGN_OR_RETURN(full, ParsePostfix(std::move(arg)));
            t->args.push_back(std::move(full));
          }
        }
        node = std::move(t);
      } else if (IsOp("(")) {
        ExprPtr call = MakeExpr(Expr::Kind::kCall, line);
        call->a = std::move(node);
        KVSERVE_RETURN_IF_ERROR(ParseCallArgs(call.get()));
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& tokens_;
  size_t pos_ = 0;
  int depth_ = 0;  // see Nesting
};

}  // namespace

absl::StatusOr<Body> ParseTemplate(const std::vector<Token>& tokens) {
  if (tokens.empty() || tokens.back().kind != Token::Kind::kEnd) {
    return absl::InvalidArgumentError("chat template: the token list has no end");
  }
  return Parser(tokens).ParseAll();
}

}  // namespace kvserve::server::jinja
