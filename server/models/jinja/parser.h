// Parser of kvserve's Jinja subset: tokens → an abstract syntax tree, with jinja2's grammar and
// operator precedence (loosest first): `x if c else y`, `or`, `and`, `not`, comparisons and
// `in` / `not in`, `+ -`, `~`, `* / // %`, `**`, unary `- +`, then primaries with postfix
// `.attr`, `[index]`, `[a:b:c]`, calls, `|filter(...)` and `is [not] test(...)`.
//
// Statements: if/elif/else, for (with `if` filter, `else`, tuple targets), set (names, tuples,
// `ns.attr`, block set), macro, break, continue. Everything else jinja2 knows (include, extends,
// block, import, from, call, filter, raw, with, autoescape, recursive loops, ...) is rejected
// here, as are unknown filters and tests, so a template outside the subset never renders.
//
// Ownership: the tree owns its nodes (unique_ptr). Thread-safety: an Ast is immutable after
// parsing and may be shared between threads.
#ifndef KVSERVE_SERVER_MODELS_JINJA_PARSER_H_
#define KVSERVE_SERVER_MODELS_JINJA_PARSER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/models/jinja/lexer.h"
#include "server/models/jinja/value.h"

namespace kvserve::server::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // literal
    kName,       // name
    kList,       // args = items (also tuples)
    kDict,       // kwargs-like: dict_items
    kGetAttr,    // a.name
    kGetItem,    // a[b]
    kSlice,      // a[b:c:d], each of b, c, d optional
    kCall,       // a(args, kwargs)
    kFilter,     // a | name(args, kwargs)
    kTest,       // a is [not] name(args)   (negated)
    kUnary,      // name = "-", "+", "not"; a
    kBinary,     // name = operator: + - * / // % ** ~ == != < <= > >= in notin and or; a, b
    kCondition,  // b if a else c (c optional)
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> dict_items;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind { kText, kPrint, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue };
  Kind kind;
  int line = 0;
  std::string text;                                // kText
  ExprPtr expr;                                    // kPrint, kSet value, kFor iterable
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: (condition, body) for if and elifs
  Body body;                                       // kFor, kSetBlock, kMacro
  Body else_body;                                  // kIf, kFor
  std::vector<std::string> targets;                // kFor / kSet / kSetBlock names
  std::string attribute;                           // kSet `ns.attribute = ...` (targets[0] = ns)
  ExprPtr loop_filter;                             // kFor `if`
  std::string name;                                // kMacro
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro (default or null)
};

// Errors: InvalidArgument naming the unsupported construct or syntax error and its line.
absl::StatusOr<Body> ParseTemplate(const std::vector<Token>& tokens);

}  // namespace kvserve::server::jinja

#endif  // KVSERVE_SERVER_MODELS_JINJA_PARSER_H_
