#include "server/models/jinja/interpreter.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/stack_guard.h"
#include "base/status_macros.h"
#include "unicode/uchar.h"
#include "unicode/ustring.h"
#include "unicode/utf16.h"
#include "unicode/utf8.h"

namespace kvserve::server::jinja {
namespace {

absl::Status Fail(int line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
}

// a + b, a - b or a * b (`op`); a result that does not fit int64_t is an error (Python's ints have
// no bound), never undefined behaviour. `what` names the operation in the error.
absl::StatusOr<int64_t> CheckedInt(char op, int64_t a, int64_t b, const std::string& what,
                                   int line) {
  int64_t result = 0;
  const bool overflowed = op == '+'   ? __builtin_add_overflow(a, b, &result)
                          : op == '-' ? __builtin_sub_overflow(a, b, &result)
                                      : __builtin_mul_overflow(a, b, &result);
  if (overflowed) return Fail(line, absl::StrCat("integer overflow in ", what));
  return result;
}

// a ** b for b >= 0 by squaring; an error when it does not fit int64_t.
absl::StatusOr<int64_t> IntPower(int64_t base, int64_t exponent, int line) {
  int64_t result = 1;
  while (exponent > 0) {
    if ((exponent & 1) != 0 && __builtin_mul_overflow(result, base, &result)) {
      return Fail(line, "integer overflow in **");
    }
    exponent >>= 1;
    if (exponent > 0 && __builtin_mul_overflow(base, base, &base)) {
      return Fail(line, "integer overflow in **");
    }
  }
  return result;
}

// ---- string helpers (Python str semantics over code points) ----

// Case mapping with ICU's Unicode data, as Python's str methods do it: upper() and lower() use
// full mappings ("ß".upper() == "SS"), title() and capitalize() title-case a word's first
// cased character and lower the rest.
std::u16string ToUtf16(std::string_view s) {
  std::u16string out;
  for (std::string_view cp : SplitCodePoints(s)) {
    UChar32 c = 0;
    int32_t i = 0;
    U8_NEXT(reinterpret_cast<const uint8_t*>(cp.data()), i, static_cast<int32_t>(cp.size()), c);
    if (c < 0) c = 0xFFFD;
    if (c > 0xFFFF) {
      out += static_cast<char16_t>(U16_LEAD(c));
      out += static_cast<char16_t>(U16_TRAIL(c));
    } else {
      out += static_cast<char16_t>(c);
    }
  }
  return out;
}

std::string ToUtf8(const std::u16string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    UChar32 c = 0;
    U16_NEXT(s.data(), i, s.size(), c);
    char buf[4];
    int32_t n = 0;
    UBool error = false;
    U8_APPEND(reinterpret_cast<uint8_t*>(buf), n, 4, c, error);
    out.append(buf, n);
  }
  return out;
}

std::string FullCaseMap(std::string_view s, bool upper) {
  const std::u16string in = ToUtf16(s);
  std::u16string out(in.size() * 3 + 4, u'\0');
  UErrorCode status = U_ZERO_ERROR;
  const int32_t n =
      upper ? u_strToUpper(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()),
                           reinterpret_cast<const UChar*>(in.data()),
                           static_cast<int32_t>(in.size()), "", &status)
            : u_strToLower(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()),
                           reinterpret_cast<const UChar*>(in.data()),
                           static_cast<int32_t>(in.size()), "", &status);
  if (U_FAILURE(status)) return std::string(s);
  out.resize(n);
  return ToUtf8(out);
}
std::string Lower(std::string_view s) { return FullCaseMap(s, false); }
std::string Upper(std::string_view s) { return FullCaseMap(s, true); }

UChar32 CodePointOf(std::string_view cp) {
  UChar32 c = 0;
  int32_t i = 0;
  U8_NEXT(reinterpret_cast<const uint8_t*>(cp.data()), i, static_cast<int32_t>(cp.size()), c);
  return c;
}

std::string TitleCodePoint(std::string_view cp) {
  const UChar32 c = CodePointOf(cp);
  if (c < 0) return std::string(cp);
  const UChar32 t = u_totitle(c);
  char buf[4];
  int32_t n = 0;
  UBool error = false;
  U8_APPEND(reinterpret_cast<uint8_t*>(buf), n, 4, t, error);
  return std::string(buf, n);
}

bool IsCased(std::string_view cp) {
  const UChar32 c = CodePointOf(cp);
  return c >= 0 && u_hasBinaryProperty(c, UCHAR_CASED);
}

// str.title(): a cased character after a cased character is lowered, others title-cased.
std::string PythonTitle(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (std::string_view cp : SplitCodePoints(s)) {
    out += previous_cased ? FullCaseMap(cp, false) : TitleCodePoint(cp);
    previous_cased = IsCased(cp);
  }
  return out;
}

std::string PythonCapitalize(std::string_view s) {
  std::vector<std::string_view> cps = SplitCodePoints(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    out += i == 0 ? TitleCodePoint(cps[i]) : FullCaseMap(cps[i], false);
  }
  return out;
}

// jinja2's title filter: words start after runs of '-', whitespace, '(', '{', '[' or '<'; a
// word's first character is upper-cased and the rest lowered.
std::string JinjaTitle(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (std::string_view cp : SplitCodePoints(s)) {
    const bool separator =
        IsPythonSpace(cp) || cp == "-" || cp == "(" || cp == "{" || cp == "[" || cp == "<";
    if (separator) {
      out += cp;
      word_start = true;
    } else {
      out += FullCaseMap(cp, !word_start ? false : true);
      word_start = false;
    }
  }
  return out;
}

// str.strip / lstrip / rstrip: `chars` unset strips whitespace.
std::string PythonStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                        bool right) {
  std::vector<std::string_view> cps = SplitCodePoints(s);
  std::vector<std::string_view> set;
  if (chars.has_value()) set = SplitCodePoints(*chars);
  auto strip = [&](std::string_view cp) {
    if (!chars.has_value()) return IsPythonSpace(cp);
    return std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t begin = 0, end = cps.size();
  if (left) {
    while (begin < end && strip(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip(cps[end - 1])) --end;
  }
  std::string out;
  for (size_t i = begin; i < end; ++i) out += cps[i];
  return out;
}

// str.replace; nullopt when the result would exceed `max_bytes`.
std::optional<std::string> PythonReplace(std::string_view s, std::string_view old_text,
                                         std::string_view new_text, int64_t count,
                                         size_t max_bytes) {
  std::string out;
  if (old_text.empty()) {  // inserts around every code point
    std::vector<std::string_view> cps = SplitCodePoints(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      if (i < cps.size()) out += cps[i];
      if (out.size() > max_bytes) return std::nullopt;
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(old_text, pos);
    if (at == std::string_view::npos) break;
    out += s.substr(pos, at - pos);
    out += new_text;
    if (out.size() > max_bytes) return std::nullopt;
    pos = at + old_text.size();
    ++done;
  }
  out += s.substr(pos);
  return out;
}

// ---- scopes ----

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* Find(std::string_view name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
      for (const auto& [k, v] : s->vars) {
        if (k == name) return &v;
      }
    }
    return nullptr;
  }
  void Set(const std::string& name, Value value) {
    for (auto& [k, v] : vars) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { kNormal, kBreak, kContinue };

// How deep rendering may recurse (nested blocks, nested expressions, macro calls) and how
// deeply lists and dicts a template builds may nest. Rendering stops earlier, with the same
// error, when the thread's stack runs short (base/stack_guard.h): a template that a big stack
// renders must not crash a small one.
constexpr int kMaxRenderDepth = 256;
constexpr int kMaxValueNesting = 64;
// What one render may cost, so that no template (a model file's, or a fuzzer's) runs unbounded:
// blocks and expressions evaluated (nested loops over range() would otherwise take hours), the
// bytes of the output and of any string the template builds (`'x' * 10**12`), the items of a
// list it builds by + or *. A real chat template spends a few hundred steps per message.
constexpr int64_t kMaxRenderSteps = 2'000'000;
constexpr size_t kMaxRenderBytes = 64 << 20;
constexpr size_t kMaxStringBytes = 16 << 20;
constexpr size_t kMaxListItems = 1 << 20;
// Bounds Value::weight(): printing, comparing or serializing any value walks at most this much.
constexpr uint64_t kMaxValueWeight = 64 << 20;
// tojson's indent: a wider one is never needed, and indent x nesting x items is output.
constexpr int64_t kMaxJsonIndent = 64;

absl::Status OutputTooLong(int line) {
  return Fail(line, absl::StrCat("the rendered text exceeds ", kMaxRenderBytes, " bytes"));
}

// The bytes of the strings directly in `items`: a copy of a list copies those (nested lists are
// shared).
size_t StringBytes(const ValueList& items) {
  size_t bytes = 0;
  for (const Value& item : items) bytes += item.is_string() ? item.string().size() : 0;
  return bytes;
}

// Whether a namespace() is inside `v` (or is `v`). Lists and dicts are shared, so the walk visits
// each once: a value built by doubling has 2^depth paths but only depth containers.
bool HoldsNamespace(const Value& v) {
  std::vector<const Value*> todo = {&v};
  absl::flat_hash_set<const void*> seen;
  while (!todo.empty()) {
    const Value* x = todo.back();
    todo.pop_back();
    if (x->is_namespace()) return true;
    if (x->is_list() && seen.insert(&x->list()).second) {
      for (const Value& item : x->list()) todo.push_back(&item);
    } else if (x->is_dict() && seen.insert(&x->dict()).second) {
      for (const auto& [key, item] : x->dict()) todo.push_back(&item);
    }
  }
  return false;
}

absl::Status ValueTooLarge(int line, const std::string& op) {
  return Fail(line, absl::StrCat(op, " would build a value over ", kMaxStringBytes, " bytes or ",
                                 kMaxListItems, " items"));
}

class Renderer {
 public:
  // Exec and Eval count the recursion depth and check the stack, then do the work.
  absl::StatusOr<Flow> Exec(const Body& body, const ScopePtr& scope, std::string* out);
  absl::StatusOr<Value> Eval(const Expr& e, const ScopePtr& scope);

 private:
  absl::Status EnterLevel(int line);
  absl::StatusOr<Flow> ExecBody(const Body& body, const ScopePtr& scope, std::string* out);
  absl::StatusOr<Value> EvalExpr(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<Flow> ExecFor(const Stmt& s, const ScopePtr& scope, std::string* out);
  Value MakeMacro(const Stmt& s, const ScopePtr& scope);
  absl::StatusOr<Value> EvalDict(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<Value> EvalCall(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<Value> EvalUnary(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<Value> EvalBinary(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<Value> Arithmetic(const std::string& op, const Value& a, const Value& b, int line);
  absl::StatusOr<int> Compare(const Value& a, const Value& b, int line);
  absl::StatusOr<bool> Contains(const Value& container, const Value& item, int line);
  absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name, int line);
  absl::StatusOr<Value> GetItem(const Value& obj, const Value& key, int line);
  absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop,
                              const Value& step, int line);
  absl::StatusOr<ValueList> Iterate(const Value& v, int line);
  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, const ScopePtr& scope);
  absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& v, const CallArgs& args,
                                    int line);
  // The filters too long to stand inline in ApplyFilter.
  absl::StatusOr<Value> FilterToJson(const Value& v, const CallArgs& args, int line);
  absl::StatusOr<Value> FilterReverse(const Value& v, int line);
  absl::StatusOr<Value> FilterJoin(const Value& v, const CallArgs& args, int line);
  absl::StatusOr<Value> FilterNumber(const std::string& name, const Value& v, const CallArgs& args);
  absl::StatusOr<Value> FilterSum(const Value& v, const CallArgs& args, int line);
  absl::StatusOr<Value> FilterUnique(const Value& v, int line);
  absl::StatusOr<Value> FilterMap(const Value& v, const CallArgs& args, int line);
  absl::StatusOr<Value> FilterSelect(const std::string& name, const Value& v, const CallArgs& args,
                                     int line);
  absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const CallArgs& args,
                                 int line);
  absl::StatusOr<Value> StringMethod(const std::string& s, const std::string& name,
                                     const CallArgs& args, int line);
  // The str methods too long to stand inline in StringMethod.
  absl::StatusOr<Value> StringSplit(const std::string& s, const CallArgs& args, int line);
  absl::StatusOr<Value> StringJoin(const std::string& s, const CallArgs& args, int line);
  absl::StatusOr<Value> StringFormat(const std::string& s, const CallArgs& args, int line);
  absl::StatusOr<Value> DictMethod(const Value& d, const std::string& name, const CallArgs& args,
                                   int line);
  absl::StatusOr<int64_t> Length(const Value& v, int line);

  int depth_ = 0;
  int64_t steps_ = 0;
};

// One more level of rendering recursion, refused past kMaxRenderDepth or a short stack.
absl::Status Renderer::EnterLevel(int line) {
  if (depth_ >= kMaxRenderDepth || !base::StackHasRoom()) {
    return Fail(line, absl::StrCat("the template nests too deeply to render (", depth_,
                                   " levels of blocks, expressions and macro calls)"));
  }
  if (++steps_ > kMaxRenderSteps) {
    return Fail(line,
                absl::StrCat("the template takes more than ", kMaxRenderSteps, " steps to render"));
  }
  ++depth_;
  return absl::OkStatus();
}

absl::StatusOr<Flow> Renderer::Exec(const Body& body, const ScopePtr& scope, std::string* out) {
  KVSERVE_RETURN_IF_ERROR(EnterLevel(body.empty() ? 0 : body.front()->line));
  absl::StatusOr<Flow> flow = ExecBody(body, scope, out);
  --depth_;
  return flow;
}

absl::StatusOr<Value> Renderer::Eval(const Expr& e, const ScopePtr& scope) {
  KVSERVE_RETURN_IF_ERROR(EnterLevel(e.line));
  absl::StatusOr<Value> v = EvalExpr(e, scope);
  --depth_;
  if (v.ok() && v->nesting() > kMaxValueNesting) {
    return Fail(e.line, absl::StrCat("a value nests lists and dicts deeper than ", kMaxValueNesting,
                                     " levels"));
  }
  if (v.ok() && v->weight() > kMaxValueWeight) {
    return Fail(e.line, absl::StrCat("a value holds more than ", kMaxValueWeight,
                                     " items and bytes when its shared lists are counted each "
                                     "time they occur"));
  }
  return v;
}

absl::StatusOr<Flow> Renderer::ExecBody(const Body& body, const ScopePtr& scope, std::string* out) {
  for (const std::unique_ptr<Stmt>& stmt : body) {
    const Stmt& s = *stmt;
    switch (s.kind) {
      case Stmt::Kind::kText:
        *out += s.text;
        if (out->size() > kMaxRenderBytes) return OutputTooLong(s.line);
        break;
      case Stmt::Kind::kPrint: {
        KVSERVE_ASSIGN_OR_RETURN(v, Eval(*s.expr, scope));
        *out += v.ToString();
        if (out->size() > kMaxRenderBytes) return OutputTooLong(s.line);
        break;
      }
      case Stmt::Kind::kIf: {
        const Body* chosen = &s.else_body;
        for (const auto& [cond, branch] : s.branches) {
          KVSERVE_ASSIGN_OR_RETURN(c, Eval(*cond, scope));
          if (c.Truthy()) {
            chosen = &branch;
            break;
          }
        }
        KVSERVE_ASSIGN_OR_RETURN(flow, Exec(*chosen, scope, out));
        if (flow != Flow::kNormal) return flow;
        break;
      }
      case Stmt::Kind::kFor: {
        KVSERVE_ASSIGN_OR_RETURN(flow, ExecFor(s, scope, out));
        (void)flow;
        break;
      }
      case Stmt::Kind::kSet: {
        KVSERVE_ASSIGN_OR_RETURN(v, Eval(*s.expr, scope));
        if (!s.attribute.empty()) {
          const Value* ns = scope->Find(s.targets[0]);
          if (ns == nullptr || !ns->is_namespace()) {
            return Fail(s.line, absl::StrCat("cannot assign attribute '", s.attribute, "' on '",
                                             s.targets[0], "': it is not a namespace()"));
          }
          // A namespace inside a namespace attribute could be the namespace itself (a cycle of
          // shared pointers: leaked, and printed forever) or one whose depth the values holding
          // it do not know; templates only ever store plain values there.
          if (HoldsNamespace(v)) {
            return Fail(s.line, absl::StrCat("cannot assign a value holding a namespace() to '",
                                             s.targets[0], ".", s.attribute, "'"));
          }
          ValueDict& attributes = ns->mutable_namespace();
          bool found = false;
          for (auto& [k, old] : attributes) {
            if (k == s.attribute) {
              old = v;
              found = true;
            }
          }
          if (!found) attributes.emplace_back(s.attribute, v);
        } else if (s.targets.size() == 1) {
          scope->Set(s.targets[0], std::move(v));
        } else {
          KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, s.line));
          if (items.size() != s.targets.size()) {
            return Fail(s.line, absl::StrCat("cannot unpack ", items.size(), " values into ",
                                             s.targets.size(), " names"));
          }
          for (size_t i = 0; i < items.size(); ++i) scope->Set(s.targets[i], items[i]);
        }
        break;
      }
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        KVSERVE_ASSIGN_OR_RETURN(flow, Exec(s.body, scope, &captured));
        (void)flow;
        scope->Set(s.targets[0], Value::String(std::move(captured)));
        break;
      }
      case Stmt::Kind::kMacro:
        scope->Set(s.name, MakeMacro(s, scope));
        break;
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
  }
  return Flow::kNormal;
}

absl::StatusOr<Flow> Renderer::ExecFor(const Stmt& s, const ScopePtr& scope, std::string* out) {
  KVSERVE_ASSIGN_OR_RETURN(iterable, Eval(*s.expr, scope));
  KVSERVE_ASSIGN_OR_RETURN(all, Iterate(iterable, s.line));
  auto bind = [&](const Value& item, Scope* target) -> absl::Status {
    if (s.targets.size() == 1) {
      target->Set(s.targets[0], item);
      return absl::OkStatus();
    }
    KVSERVE_ASSIGN_OR_RETURN(parts, Iterate(item, s.line));
    if (parts.size() != s.targets.size()) {
      return Fail(s.line, absl::StrCat("cannot unpack ", parts.size(), " values into ",
                                       s.targets.size(), " loop variables"));
    }
    for (size_t i = 0; i < parts.size(); ++i) target->Set(s.targets[i], parts[i]);
    return absl::OkStatus();
  };
  ValueList items;
  if (s.loop_filter != nullptr) {
    for (const Value& item : all) {
      auto filter_scope = std::make_shared<Scope>();
      filter_scope->parent = scope;
      KVSERVE_RETURN_IF_ERROR(bind(item, filter_scope.get()));
      KVSERVE_ASSIGN_OR_RETURN(keep, Eval(*s.loop_filter, filter_scope));
      if (keep.Truthy()) items.push_back(item);
    }
  } else {
    items = std::move(all);
  }
  if (items.empty()) {
    KVSERVE_ASSIGN_OR_RETURN(flow, Exec(s.else_body, scope, out));
    return flow;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    auto iteration = std::make_shared<Scope>();
    iteration->parent = scope;
    KVSERVE_RETURN_IF_ERROR(bind(items[i], iteration.get()));
    ValueDict loop = {
        {"index", Value::Int(i + 1)},
        {"index0", Value::Int(i)},
        {"revindex", Value::Int(n - i)},
        {"revindex0", Value::Int(n - i - 1)},
        {"first", Value::Bool(i == 0)},
        {"last", Value::Bool(i == n - 1)},
        {"length", Value::Int(n)},
        {"depth", Value::Int(1)},
        {"depth0", Value::Int(0)},
        {"previtem", i > 0 ? items[i - 1] : Value()},
        {"nextitem", i + 1 < n ? items[i + 1] : Value()},
    };
    loop.emplace_back(
        "cycle", Value::Callable("loop.cycle", [i](const CallArgs& args) -> absl::StatusOr<Value> {
          if (args.positional.empty()) {
            return absl::InvalidArgumentError("loop.cycle() needs arguments");
          }
          return args.positional[i % args.positional.size()];
        }));
    iteration->Set("loop", Value::Dict(std::move(loop)));
    KVSERVE_ASSIGN_OR_RETURN(flow, Exec(s.body, iteration, out));
    if (flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Value Renderer::MakeMacro(const Stmt& s, const ScopePtr& scope) {
  // The macro refers to its defining scope weakly: the scope holds the macro.
  std::weak_ptr<Scope> weak = scope;
  const Stmt* stmt = &s;
  return Value::Callable(s.name, [this, stmt, weak](const CallArgs& args) -> absl::StatusOr<Value> {
    auto call_scope = std::make_shared<Scope>();
    call_scope->parent = weak.lock();
    if (args.positional.size() > stmt->params.size()) {
      return Fail(stmt->line, absl::StrCat("macro '", stmt->name, "' takes ", stmt->params.size(),
                                           " arguments, got ", args.positional.size()));
    }
    for (size_t i = 0; i < stmt->params.size(); ++i) {
      const auto& [param, default_value] = stmt->params[i];
      if (const Value* given = args.Get(i, param)) {
        call_scope->Set(param, *given);
      } else if (default_value != nullptr) {
        KVSERVE_ASSIGN_OR_RETURN(d, Eval(*default_value, call_scope));
        call_scope->Set(param, std::move(d));
      } else {
        call_scope->Set(param, Value());
      }
    }
    std::string out;
    KVSERVE_ASSIGN_OR_RETURN(flow, Exec(stmt->body, call_scope, &out));
    (void)flow;
    return Value::String(std::move(out));
  });
}

absl::StatusOr<CallArgs> Renderer::EvalArgs(const Expr& e, const ScopePtr& scope) {
  CallArgs args;
  for (const ExprPtr& a : e.args) {
    KVSERVE_ASSIGN_OR_RETURN(v, Eval(*a, scope));
    args.positional.push_back(std::move(v));
  }
  for (const auto& [name, a] : e.kwargs) {
    KVSERVE_ASSIGN_OR_RETURN(v, Eval(*a, scope));
    args.keyword.emplace_back(name, std::move(v));
  }
  return args;
}

absl::StatusOr<Value> Renderer::EvalExpr(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.literal;
    case Expr::Kind::kName: {
      const Value* v = scope->Find(e.name);
      return v != nullptr ? *v : Value();
    }
    case Expr::Kind::kList: {
      ValueList items;
      for (const ExprPtr& a : e.args) {
        KVSERVE_ASSIGN_OR_RETURN(v, Eval(*a, scope));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items));
    }
    case Expr::Kind::kDict:
      return EvalDict(e, scope);
    case Expr::Kind::kGetAttr: {
      KVSERVE_ASSIGN_OR_RETURN(obj, Eval(*e.a, scope));
      return GetAttr(obj, e.name, e.line);
    }
    case Expr::Kind::kGetItem: {
      KVSERVE_ASSIGN_OR_RETURN(obj, Eval(*e.a, scope));
      KVSERVE_ASSIGN_OR_RETURN(key, Eval(*e.b, scope));
      return GetItem(obj, key, e.line);
    }
    case Expr::Kind::kSlice: {
      KVSERVE_ASSIGN_OR_RETURN(obj, Eval(*e.args[0], scope));
      Value parts[3];
      for (int i = 0; i < 3; ++i) {
        if (e.args[i + 1] == nullptr) continue;
        KVSERVE_ASSIGN_OR_RETURN(v, Eval(*e.args[i + 1], scope));
        parts[i] = std::move(v);
      }
      return Slice(obj, parts[0], parts[1], parts[2], e.line);
    }
    case Expr::Kind::kCall:
      return EvalCall(e, scope);
    case Expr::Kind::kFilter: {
      KVSERVE_ASSIGN_OR_RETURN(v, Eval(*e.a, scope));
      KVSERVE_ASSIGN_OR_RETURN(args, EvalArgs(e, scope));
      return ApplyFilter(e.name, v, args, e.line);
    }
    case Expr::Kind::kTest: {
      KVSERVE_ASSIGN_OR_RETURN(v, Eval(*e.a, scope));
      KVSERVE_ASSIGN_OR_RETURN(args, EvalArgs(e, scope));
      KVSERVE_ASSIGN_OR_RETURN(result, ApplyTest(e.name, v, args, e.line));
      return Value::Bool(result != e.negated);
    }
    case Expr::Kind::kUnary:
      return EvalUnary(e, scope);
    case Expr::Kind::kBinary:
      return EvalBinary(e, scope);
    case Expr::Kind::kCondition: {
      KVSERVE_ASSIGN_OR_RETURN(cond, Eval(*e.a, scope));
      if (cond.Truthy()) return Eval(*e.b, scope);
      if (e.c == nullptr) return Value();
      return Eval(*e.c, scope);
    }
  }
  return Fail(e.line, "unknown expression");
}

absl::StatusOr<Value> Renderer::EvalDict(const Expr& e, const ScopePtr& scope) {
  ValueDict items;
  for (const auto& [key_expr, value_expr] : e.dict_items) {
    KVSERVE_ASSIGN_OR_RETURN(key, Eval(*key_expr, scope));
    if (!key.is_string()) return Fail(e.line, "dict literal keys must be strings here");
    KVSERVE_ASSIGN_OR_RETURN(value, Eval(*value_expr, scope));
    bool replaced = false;
    for (auto& [k, v] : items) {
      if (k == key.string()) {
        v = value;
        replaced = true;
      }
    }
    if (!replaced) items.emplace_back(key.string(), std::move(value));
  }
  return Value::Dict(std::move(items));
}

absl::StatusOr<Value> Renderer::EvalCall(const Expr& e, const ScopePtr& scope) {
  KVSERVE_ASSIGN_OR_RETURN(callee, Eval(*e.a, scope));
  KVSERVE_ASSIGN_OR_RETURN(args, EvalArgs(e, scope));
  if (!callee.is_callable()) {
    std::string what = e.a->kind == Expr::Kind::kName      ? e.a->name
                       : e.a->kind == Expr::Kind::kGetAttr ? e.a->name
                                                           : "expression";
    return Fail(e.line, absl::StrCat("'", what, "' is ",
                                     callee.is_undefined() ? "undefined" : "not callable"));
  }
  absl::StatusOr<Value> result = callee.Call(args);
  return result;
}

absl::StatusOr<Value> Renderer::EvalUnary(const Expr& e, const ScopePtr& scope) {
  KVSERVE_ASSIGN_OR_RETURN(v, Eval(*e.a, scope));
  if (e.name == "not") return Value::Bool(!v.Truthy());
  if (!v.is_number()) {
    return Fail(e.line,
                absl::StrCat("bad operand type for unary ", e.name, ": '", v.TypeName(), "'"));
  }
  if (e.name == "+") return v.is_float() ? v : Value::Int(v.integer());
  if (v.is_float()) return Value::Float(-v.number());
  KVSERVE_ASSIGN_OR_RETURN(negated, CheckedInt('-', 0, v.integer(), "unary -", e.line));
  return Value::Int(negated);
}

absl::StatusOr<Value> Renderer::EvalBinary(const Expr& e, const ScopePtr& scope) {
  KVSERVE_ASSIGN_OR_RETURN(a, Eval(*e.a, scope));
  if (e.name == "and") return a.Truthy() ? Eval(*e.b, scope) : a;
  if (e.name == "or") return a.Truthy() ? a : Eval(*e.b, scope);
  KVSERVE_ASSIGN_OR_RETURN(b, Eval(*e.b, scope));
  const std::string& op = e.name;
  if (op == "~") {
    std::string joined = a.ToString() + b.ToString();
    if (joined.size() > kMaxStringBytes) return ValueTooLarge(e.line, op);
    return Value::String(std::move(joined));
  }
  if (op == "==") return Value::Bool(a.Equals(b));
  if (op == "!=") return Value::Bool(!a.Equals(b));
  if (op == "in" || op == "notin") {
    KVSERVE_ASSIGN_OR_RETURN(in, Contains(b, a, e.line));
    return Value::Bool(in == (op == "in"));
  }
  if (op == "<" || op == "<=" || op == ">" || op == ">=") {
    KVSERVE_ASSIGN_OR_RETURN(c, Compare(a, b, e.line));
    if (op == "<") return Value::Bool(c < 0);
    if (op == "<=") return Value::Bool(c <= 0);
    if (op == ">") return Value::Bool(c > 0);
    return Value::Bool(c >= 0);
  }
  return Arithmetic(op, a, b, e.line);
}

absl::StatusOr<Value> Renderer::Arithmetic(const std::string& op, const Value& a, const Value& b,
                                           int line) {
  auto type_error = [&] {
    return Fail(line, absl::StrCat("unsupported operand types for ", op, ": '", a.TypeName(),
                                   "' and '", b.TypeName(), "'"));
  };
  if (a.is_number() && b.is_number()) {
    const bool floats = a.is_float() || b.is_float();
    if (op == "+") {
      if (floats) return Value::Float(a.number() + b.number());
      KVSERVE_ASSIGN_OR_RETURN(sum, CheckedInt('+', a.integer(), b.integer(), op, line));
      return Value::Int(sum);
    }
    if (op == "-") {
      if (floats) return Value::Float(a.number() - b.number());
      KVSERVE_ASSIGN_OR_RETURN(difference, CheckedInt('-', a.integer(), b.integer(), op, line));
      return Value::Int(difference);
    }
    if (op == "*") {
      if (floats) return Value::Float(a.number() * b.number());
      KVSERVE_ASSIGN_OR_RETURN(product, CheckedInt('*', a.integer(), b.integer(), op, line));
      return Value::Int(product);
    }
    if ((op == "/" || op == "//" || op == "%") && b.number() == 0) {
      return Fail(line, "division by zero");
    }
    if (op == "/") return Value::Float(a.number() / b.number());
    // The one quotient of int64_t that overflows: INT64_MIN // -1 (and INT64_MIN % -1 is 0).
    if (!floats && b.integer() == -1) {
      if (op == "%") return Value::Int(0);
      if (op == "//") {
        KVSERVE_ASSIGN_OR_RETURN(negated, CheckedInt('-', 0, a.integer(), op, line));
        return Value::Int(negated);
      }
    }
    if (op == "//") {
      if (floats) return Value::Float(std::floor(a.number() / b.number()));
      int64_t q = a.integer() / b.integer();
      if ((a.integer() % b.integer() != 0) && ((a.integer() < 0) != (b.integer() < 0))) --q;
      return Value::Int(q);
    }
    if (op == "%") {
      if (floats) {
        double r = std::fmod(a.number(), b.number());
        if (r != 0 && ((r < 0) != (b.number() < 0))) r += b.number();
        return Value::Float(r);
      }
      int64_t r = a.integer() % b.integer();
      if (r != 0 && ((r < 0) != (b.integer() < 0))) r += b.integer();
      return Value::Int(r);
    }
    if (op == "**") {
      if (!floats && b.integer() >= 0) {
        KVSERVE_ASSIGN_OR_RETURN(power, IntPower(a.integer(), b.integer(), line));
        return Value::Int(power);
      }
      return Value::Float(std::pow(a.number(), b.number()));
    }
    return type_error();
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.string().size() + b.string().size() > kMaxStringBytes) return ValueTooLarge(line, op);
      return Value::String(a.string() + b.string());
    }
    if (a.is_list() && b.is_list()) {
      if (a.list().size() + b.list().size() > kMaxListItems ||
          StringBytes(a.list()) + StringBytes(b.list()) > kMaxRenderBytes) {
        return ValueTooLarge(line, op);
      }
      ValueList items = a.list();
      items.insert(items.end(), b.list().begin(), b.list().end());
      return Value::List(std::move(items));
    }
  }
  if (op == "*") {
    const Value& seq = a.is_number() ? b : a;
    const Value& times = a.is_number() ? a : b;
    if (times.is_int() || times.is_bool()) {
      const size_t size = seq.is_string() ? seq.string().size()
                          : seq.is_list() ? seq.list().size()
                                          : 0;
      // Repeating nothing is nothing, however often ('' * 10**18 must not loop).
      const int64_t n = size == 0 ? 0 : std::max<int64_t>(0, times.integer());
      const size_t limit = seq.is_string() ? kMaxStringBytes : kMaxListItems;
      if (size > 0 && static_cast<uint64_t>(n) > limit / size) return ValueTooLarge(line, op);
      const size_t list_bytes = seq.is_list() ? StringBytes(seq.list()) : 0;
      if (list_bytes > 0 && static_cast<uint64_t>(n) > kMaxRenderBytes / list_bytes) {
        return ValueTooLarge(line, op);
      }
      if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.string();
        return Value::String(std::move(out));
      }
      if (seq.is_list()) {
        ValueList out;
        for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
        return Value::List(std::move(out));
      }
    }
  }
  return type_error();
}

absl::StatusOr<int> Renderer::Compare(const Value& a, const Value& b, int line) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      return a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
    }
    return a.integer() < b.integer() ? -1 : a.integer() > b.integer() ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.string().compare(b.string());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    for (size_t i = 0; i < std::min(a.list().size(), b.list().size()); ++i) {
      if (a.list()[i].Equals(b.list()[i])) continue;
      return Compare(a.list()[i], b.list()[i], line);
    }
    return a.list().size() < b.list().size() ? -1 : a.list().size() > b.list().size() ? 1 : 0;
  }
  return Fail(line, absl::StrCat("ordering is not supported between '", a.TypeName(), "' and '",
                                 b.TypeName(), "'"));
}

absl::StatusOr<bool> Renderer::Contains(const Value& container, const Value& item, int line) {
  if (container.is_string()) {
    if (!item.is_string()) {
      return Fail(line, absl::StrCat("'in <string>' requires a string on the left, not '",
                                     item.TypeName(), "'"));
    }
    return container.string().find(item.string()) != std::string::npos;
  }
  if (container.is_list()) {
    for (const Value& v : container.list()) {
      if (v.Equals(item)) return true;
    }
    return false;
  }
  if (container.is_dict()) return item.is_string() && container.Find(item.string()) != nullptr;
  if (container.is_undefined()) return false;
  return Fail(line, absl::StrCat("'in' needs a string, list or dict on the right, not '",
                                 container.TypeName(), "'"));
}

absl::StatusOr<ValueList> Renderer::Iterate(const Value& v, int line) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return ValueList{};
    case Value::Kind::kList:
      return v.list();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& [k, unused] : v.dict()) keys.push_back(Value::String(k));
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      for (std::string_view cp : SplitCodePoints(v.string()))
        chars.push_back(Value::String(std::string(cp)));
      return chars;
    }
    default:
      return Fail(line, absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

absl::StatusOr<int64_t> Renderer::Length(const Value& v, int line) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(SplitCodePoints(v.string()).size());
    case Value::Kind::kList:
      return static_cast<int64_t>(v.list().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().size());
    default:
      return Fail(line, absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
  }
}

absl::StatusOr<Value> Renderer::GetAttr(const Value& obj, const std::string& name, int line) {
  if (obj.is_undefined()) {
    return Fail(line, absl::StrCat("cannot read attribute '", name, "' of an undefined value"));
  }
  if (obj.is_string()) {
    static const char* kMethods[] = {"strip",    "lstrip", "rstrip", "split", "startswith",
                                     "endswith", "upper",  "lower",  "title", "capitalize",
                                     "replace",  "find",   "count",  "join",  "format"};
    for (const char* m : kMethods) {
      if (name == m) {
        const std::string s = obj.string();
        return Value::Callable(absl::StrCat("str.", name),
                               [this, s, name, line](const CallArgs& args) {
                                 return StringMethod(s, name, args, line);
                               });
      }
    }
    return Value();
  }
  if (obj.is_dict()) {
    if (name == "get" || name == "items" || name == "keys" || name == "values") {
      return Value::Callable(absl::StrCat("dict.", name),
                             [this, obj, name, line](const CallArgs& args) {
                               return DictMethod(obj, name, args, line);
                             });
    }
    const Value* v = obj.Find(name);
    return v != nullptr ? *v : Value();
  }
  if (obj.is_namespace()) {
    const Value* v = obj.Find(name);
    return v != nullptr ? *v : Value();
  }
  return Value();
}

absl::StatusOr<Value> Renderer::GetItem(const Value& obj, const Value& key, int line) {
  if (obj.is_undefined()) return Fail(line, "cannot index an undefined value");
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.list().size());
      int64_t i = key.integer();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();
      return obj.list()[i];
    }
    std::vector<std::string_view> cps = SplitCodePoints(obj.string());
    const int64_t n = static_cast<int64_t>(cps.size());
    int64_t i = key.integer();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    return Value::String(std::string(cps[i]));
  }
  if (obj.is_dict() && key.is_string()) {
    const Value* v = obj.Find(key.string());
    if (v != nullptr) return *v;
  }
  if (key.is_string()) return GetAttr(obj, key.string(), line);
  return Value();
}

absl::StatusOr<Value> Renderer::Slice(const Value& obj, const Value& start, const Value& stop,
                                      const Value& step_value, int line) {
  for (const Value* v : {&start, &stop, &step_value}) {
    if (!v->is_undefined() && !v->is_none() && !v->is_int() && !v->is_bool()) {
      return Fail(line, "slice indices must be integers or none");
    }
  }
  const int64_t step = step_value.is_int() || step_value.is_bool() ? step_value.integer() : 1;
  if (step == 0) return Fail(line, "slice step cannot be zero");
  std::vector<std::string_view> cps;
  int64_t n = 0;
  if (obj.is_list()) {
    n = static_cast<int64_t>(obj.list().size());
  } else if (obj.is_string()) {
    cps = SplitCodePoints(obj.string());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_undefined()) {
    return Fail(line, "cannot slice an undefined value");
  } else {
    return Value();
  }
  // Python's slice.indices().
  auto clamp = [&](const Value& v, int64_t fallback) {
    if (!(v.is_int() || v.is_bool())) return fallback;
    int64_t i = v.integer();
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t begin = clamp(start, step < 0 ? n - 1 : 0);
  const int64_t end = clamp(stop, step < 0 ? -1 : n);
  std::vector<int64_t> picks;
  for (int64_t i = begin; step > 0 ? i < end : i > end; i += step) picks.push_back(i);
  if (obj.is_list()) {
    ValueList out;
    for (int64_t i : picks) out.push_back(obj.list()[i]);
    return Value::List(std::move(out));
  }
  std::string out;
  for (int64_t i : picks) out += cps[i];
  return Value::String(std::move(out));
}

// Optional string argument (None and absent are unset).
absl::StatusOr<std::optional<std::string>> OptionalString(const CallArgs& args, size_t index,
                                                          const std::string& name, int line) {
  const Value* v = args.Get(index, name);
  if (v == nullptr || v->is_none() || v->is_undefined()) return std::nullopt;
  if (!v->is_string()) {
    return Fail(line,
                absl::StrCat("argument '", name, "' must be a string, not '", v->TypeName(), "'"));
  }
  return v->string();
}

absl::StatusOr<std::string> RequiredString(const CallArgs& args, size_t index,
                                           const std::string& name, int line) {
  KVSERVE_ASSIGN_OR_RETURN(s, OptionalString(args, index, name, line));
  if (!s.has_value()) return Fail(line, absl::StrCat("missing string argument '", name, "'"));
  return *s;
}

absl::StatusOr<Value> Renderer::StringSplit(const std::string& s, const CallArgs& args, int line) {
  KVSERVE_ASSIGN_OR_RETURN(sep, OptionalString(args, 0, "sep", line));
  const Value* max_value = args.Get(1, "maxsplit");
  const int64_t maxsplit =
      max_value != nullptr && max_value->is_number() ? max_value->integer() : -1;
  ValueList parts;
  if (sep.has_value()) {
    if (sep->empty()) return Fail(line, "str.split(): empty separator");
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      const size_t at = s.find(*sep, pos);
      if (at == std::string::npos) break;
      parts.push_back(Value::String(s.substr(pos, at - pos)));
      pos = at + sep->size();
    }
    parts.push_back(Value::String(s.substr(pos)));
    return Value::List(std::move(parts));
  }
  std::vector<std::string_view> cps = SplitCodePoints(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && IsPythonSpace(cps[i])) ++i;
    if (i == cps.size()) break;
    std::string word;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      for (; i < cps.size(); ++i) word += cps[i];
      // Python keeps the remainder's trailing whitespace stripped.
      parts.push_back(Value::String(PythonStrip(word, std::nullopt, false, true)));
      break;
    }
    for (; i < cps.size() && !IsPythonSpace(cps[i]); ++i) word += cps[i];
    parts.push_back(Value::String(std::move(word)));
  }
  return Value::List(std::move(parts));
}

absl::StatusOr<Value> Renderer::StringJoin(const std::string& s, const CallArgs& args, int line) {
  const Value* items = args.Get(0, "iterable");
  if (items == nullptr) return Fail(line, "str.join() needs an argument");
  KVSERVE_ASSIGN_OR_RETURN(list, Iterate(*items, line));
  std::string out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string()) {
      return Fail(line, absl::StrCat("str.join(): item ", i, " is '", list[i].TypeName(),
                                     "', not a string"));
    }
    if (i > 0) out += s;
    out += list[i].string();
    if (out.size() > kMaxStringBytes) return ValueTooLarge(line, "join");
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Renderer::StringFormat(const std::string& s, const CallArgs& args, int line) {
  std::string out;
  size_t next_auto = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (s[i] == '{') {
      const size_t close = s.find('}', i);
      if (close == std::string::npos) return Fail(line, "str.format(): unmatched '{'");
      const std::string field = s.substr(i + 1, close - i - 1);
      const Value* v = nullptr;
      int64_t index = 0;
      if (field.empty()) {
        v = next_auto < args.positional.size() ? &args.positional[next_auto++] : nullptr;
      } else if (absl::SimpleAtoi(field, &index)) {
        v = index >= 0 && static_cast<size_t>(index) < args.positional.size()
                ? &args.positional[index]
                : nullptr;
      } else {
        for (const auto& [k, kv] : args.keyword) {
          if (k == field) v = &kv;
        }
      }
      if (v == nullptr) return Fail(line, absl::StrCat("str.format(): no value for {", field, "}"));
      out += v->ToString();
      i = close;
    } else {
      out += s[i];
    }
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Renderer::StringMethod(const std::string& s, const std::string& name,
                                             const CallArgs& args, int line) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    KVSERVE_ASSIGN_OR_RETURN(chars, OptionalString(args, 0, "chars", line));
    return Value::String(PythonStrip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "upper") return Value::String(Upper(s));
  if (name == "lower") return Value::String(Lower(s));
  if (name == "title") return Value::String(PythonTitle(s));
  if (name == "capitalize") return Value::String(PythonCapitalize(s));
  if (name == "startswith" || name == "endswith") {
    const Value* arg = args.Get(0, "prefix");
    if (arg == nullptr) return Fail(line, absl::StrCat("str.", name, "() needs an argument"));
    ValueList candidates = arg->is_list() ? arg->list() : ValueList{*arg};
    for (const Value& c : candidates) {
      if (!c.is_string()) return Fail(line, absl::StrCat("str.", name, "() takes strings"));
      const std::string& p = c.string();
      if (p.size() > s.size()) continue;
      if (name == "startswith" ? s.compare(0, p.size(), p) == 0
                               : s.compare(s.size() - p.size(), p.size(), p) == 0) {
        return Value::Bool(true);
      }
    }
    return Value::Bool(false);
  }
  if (name == "split") return StringSplit(s, args, line);
  if (name == "replace") {
    KVSERVE_ASSIGN_OR_RETURN(old_text, RequiredString(args, 0, "old", line));
    KVSERVE_ASSIGN_OR_RETURN(new_text, RequiredString(args, 1, "new", line));
    const Value* count = args.Get(2, "count");
    std::optional<std::string> replaced = PythonReplace(
        s, old_text, new_text, count != nullptr && count->is_number() ? count->integer() : -1,
        kMaxStringBytes);
    if (!replaced.has_value()) return ValueTooLarge(line, "replace");
    return Value::String(*std::move(replaced));
  }
  if (name == "find" || name == "count") {
    KVSERVE_ASSIGN_OR_RETURN(sub, RequiredString(args, 0, "sub", line));
    if (name == "find") {
      const size_t at = s.find(sub);
      if (at == std::string::npos) return Value::Int(-1);
      return Value::Int(static_cast<int64_t>(SplitCodePoints(s.substr(0, at)).size()));
    }
    if (sub.empty()) return Value::Int(static_cast<int64_t>(SplitCodePoints(s).size()) + 1);
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value::Int(n);
  }
  if (name == "join") return StringJoin(s, args, line);
  if (name == "format") return StringFormat(s, args, line);
  return Fail(line, absl::StrCat("str has no method '", name, "'"));
}

absl::StatusOr<Value> Renderer::DictMethod(const Value& d, const std::string& name,
                                           const CallArgs& args, int line) {
  if (name == "get") {
    const Value* key = args.Get(0, "key");
    if (key == nullptr) return Fail(line, "dict.get() needs a key");
    if (key->is_string()) {
      if (const Value* v = d.Find(key->string())) return *v;
    }
    const Value* fallback = args.Get(1, "default");
    return fallback != nullptr ? *fallback : Value::None();
  }
  ValueList out;
  for (const auto& [k, v] : d.dict()) {
    if (name == "items") {
      out.push_back(Value::List({Value::String(k), v}));
    } else if (name == "keys") {
      out.push_back(Value::String(k));
    } else {
      out.push_back(v);
    }
  }
  return Value::List(std::move(out));
}

absl::StatusOr<bool> Renderer::ApplyTest(const std::string& name, const Value& v,
                                         const CallArgs& args, int line) {
  const Value* arg = args.Get(0, "other");
  auto need_arg = [&]() -> absl::Status {
    if (arg == nullptr) return Fail(line, absl::StrCat("test '", name, "' needs an argument"));
    return absl::OkStatus();
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.boolean();
  if (name == "false") return v.is_bool() && !v.boolean();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "lower") return v.is_string() && Lower(v.string()) == v.string();
  if (name == "upper") return v.is_string() && Upper(v.string()) == v.string();
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool())
      return Fail(line, absl::StrCat("test '", name, "' needs an integer"));
    if (name == "odd") return v.integer() % 2 != 0;
    if (name == "even") return v.integer() % 2 == 0;
    KVSERVE_RETURN_IF_ERROR(need_arg());
    if (!arg->is_int() || arg->integer() == 0)
      return Fail(line, "divisibleby needs a non-zero integer");
    return v.integer() % arg->integer() == 0;
  }
  KVSERVE_RETURN_IF_ERROR(need_arg());
  if (name == "eq" || name == "equalto" || name == "==") return v.Equals(*arg);
  if (name == "ne" || name == "!=") return !v.Equals(*arg);
  if (name == "sameas") {
    if (v.is_none() || v.is_bool() || v.is_undefined())
      return v.Equals(*arg) && v.kind() == arg->kind();
    return false;
  }
  if (name == "in") return Contains(*arg, v, line);
  KVSERVE_ASSIGN_OR_RETURN(c, Compare(v, *arg, line));
  if (name == "lt" || name == "<" || name == "lessthan") return c < 0;
  if (name == "le" || name == "<=") return c <= 0;
  if (name == "gt" || name == ">" || name == "greaterthan") return c > 0;
  if (name == "ge" || name == ">=") return c >= 0;
  return Fail(line, absl::StrCat("unsupported Jinja test '", name, "'"));
}

absl::StatusOr<Value> Renderer::FilterToJson(const Value& v, const CallArgs& args, int line) {
  const Value* indent = args.Get(0, "indent");
  const Value* ensure_ascii = args.Get(1, "ensure_ascii");
  const Value* separators = args.Get(2, "separators");
  const Value* sort_keys = args.Get(3, "sort_keys");
  // Positional order of transformers' tojson is (x, ensure_ascii, indent, separators,
  // sort_keys); templates pass these by keyword.
  if (!args.positional.empty()) return Fail(line, "tojson: pass its options by keyword");
  if (ensure_ascii != nullptr && ensure_ascii->Truthy()) {
    return Fail(line, "tojson: ensure_ascii=true is not supported");
  }
  if (separators != nullptr && !separators->is_none()) {
    return Fail(line, "tojson: separators are not supported");
  }
  int width = -1;
  if (indent != nullptr && !indent->is_none()) {
    if (!indent->is_int()) return Fail(line, "tojson: indent must be an integer");
    if (indent->integer() > kMaxJsonIndent) {
      return Fail(line,
                  absl::StrCat("tojson: an indent over ", kMaxJsonIndent, " is not supported"));
    }
    width = static_cast<int>(indent->integer());
  }
  absl::StatusOr<std::string> json = ToJson(v, width, sort_keys != nullptr && sort_keys->Truthy());
  if (!json.ok()) return Fail(line, std::string(json.status().message()));
  return Value::String(*std::move(json));
}

absl::StatusOr<Value> Renderer::FilterReverse(const Value& v, int line) {
  if (v.is_string()) {
    std::vector<std::string_view> cps = SplitCodePoints(v.string());
    std::string out;
    for (size_t i = cps.size(); i > 0; --i) out += cps[i - 1];
    return Value::String(std::move(out));
  }
  KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
  std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

absl::StatusOr<Value> Renderer::FilterJoin(const Value& v, const CallArgs& args, int line) {
  KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
  const Value* sep = args.Get(0, "d");
  const Value* attribute = args.Get(1, "attribute");
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0 && sep != nullptr) out += sep->ToString();
    if (attribute != nullptr) {
      KVSERVE_ASSIGN_OR_RETURN(item, GetItem(items[i], *attribute, line));
      out += item.ToString();
    } else {
      out += items[i].ToString();
    }
    if (out.size() > kMaxStringBytes) return ValueTooLarge(line, "join");
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Renderer::FilterNumber(const std::string& name, const Value& v,
                                             const CallArgs& args) {
  const Value* fallback = args.Get(0, "default");
  const Value def =
      fallback != nullptr ? *fallback : (name == "int" ? Value::Int(0) : Value::Float(0));
  double number = 0;
  if (v.is_number()) {
    number = v.number();
    if (name == "int" && !v.is_float()) return Value::Int(v.integer());
  } else if (v.is_string()) {
    const std::string text = PythonStrip(v.string(), std::nullopt, true, true);
    int64_t i = 0;
    if (absl::SimpleAtoi(text, &i))
      return name == "int" ? Value::Int(i) : Value::Float(static_cast<double>(i));
    if (!absl::SimpleAtod(text, &number)) return def;
  } else {
    return def;
  }
  if (name == "float") return Value::Float(number);
  if (!std::isfinite(number)) return def;
  // Python's int() of a large float is exact; ours must fit int64_t ([-2^63, 2^63)).
  if (!(std::trunc(number) >= -0x1p63 && std::trunc(number) < 0x1p63)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", number, " is out of range"));
  }
  return Value::Int(static_cast<int64_t>(std::trunc(number)));
}

absl::StatusOr<Value> Renderer::FilterSum(const Value& v, const CallArgs& args, int line) {
  KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
  const Value* attribute = args.Get(0, "attribute");
  const Value* start = args.Get(1, "start");
  Value total = start != nullptr ? *start : Value::Int(0);
  for (const Value& item : items) {
    Value x = item;
    if (attribute != nullptr) {
      KVSERVE_ASSIGN_OR_RETURN(a, GetItem(item, *attribute, line));
      x = a;
    }
    KVSERVE_ASSIGN_OR_RETURN(next, Arithmetic("+", total, x, line));
    total = next;
  }
  return total;
}

absl::StatusOr<Value> Renderer::FilterUnique(const Value& v, int line) {
  KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
  ValueList out;
  std::vector<Value> seen;
  for (const Value& item : items) {
    const Value key = item.is_string() ? Value::String(Lower(item.string())) : item;
    bool dup = false;
    for (const Value& s : seen) dup = dup || s.Equals(key);
    if (!dup) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Renderer::FilterMap(const Value& v, const CallArgs& args, int line) {
  KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
  ValueList out;
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [k, kv] : args.keyword) {
    if (k == "attribute") attribute = &kv;
    if (k == "default") fallback = &kv;
  }
  for (const Value& item : items) {
    if (attribute != nullptr) {
      KVSERVE_ASSIGN_OR_RETURN(a, GetItem(item, *attribute, line));
      out.push_back(a.is_undefined() && fallback != nullptr ? *fallback : a);
    } else {
      if (args.positional.empty() || !args.positional[0].is_string()) {
        return Fail(line, "map: give attribute= or a filter name");
      }
      CallArgs rest;
      rest.positional.assign(args.positional.begin() + 1, args.positional.end());
      KVSERVE_ASSIGN_OR_RETURN(mapped, ApplyFilter(args.positional[0].string(), item, rest, line));
      out.push_back(mapped);
    }
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Renderer::FilterSelect(const std::string& name, const Value& v,
                                             const CallArgs& args, int line) {
  KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
  const bool by_attribute = name == "selectattr" || name == "rejectattr";
  const bool keep_when = name == "select" || name == "selectattr";
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return Fail(line, absl::StrCat(name, ": needs an attribute name"));
    }
    attribute = args.positional[0].string();
    next = 1;
  }
  std::string test;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string())
      return Fail(line, absl::StrCat(name, ": the test name must be a string"));
    test = args.positional[next].string();
    ++next;
  }
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + std::min(next, args.positional.size()),
                              args.positional.end());
  ValueList out;
  for (const Value& item : items) {
    Value subject = item;
    if (by_attribute) {
      for (const std::string& part : std::vector<std::string>(absl::StrSplit(attribute, '.'))) {
        KVSERVE_ASSIGN_OR_RETURN(a, GetItem(subject, Value::String(part), line));
        subject = a;
      }
    }
    bool result = subject.Truthy();
    if (!test.empty()) {
      KVSERVE_ASSIGN_OR_RETURN(r, ApplyTest(test, subject, test_args, line));
      result = r;
    }
    if (result == keep_when) out.push_back(item);
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Renderer::ApplyFilter(const std::string& name, const Value& v,
                                            const CallArgs& args, int line) {
  if (name == "safe") return v;
  if (name == "string") return Value::String(v.ToString());
  if (name == "trim") {
    KVSERVE_ASSIGN_OR_RETURN(chars, OptionalString(args, 0, "chars", line));
    return Value::String(PythonStrip(v.ToString(), chars, true, true));
  }
  if (name == "upper") return Value::String(Upper(v.ToString()));
  if (name == "lower") return Value::String(Lower(v.ToString()));
  if (name == "capitalize") return Value::String(PythonCapitalize(v.ToString()));
  if (name == "title") return Value::String(JinjaTitle(v.ToString()));
  if (name == "length" || name == "count") {
    KVSERVE_ASSIGN_OR_RETURN(n, Length(v, line));
    return Value::Int(n);
  }
  if (name == "default" || name == "d") {
    const Value* fallback = args.Get(0, "default_value");
    const Value* boolean = args.Get(1, "boolean");
    const bool use_fallback =
        v.is_undefined() || (boolean != nullptr && boolean->Truthy() && !v.Truthy());
    if (!use_fallback) return v;
    return fallback != nullptr ? *fallback : Value::String("");
  }
  if (name == "tojson") return FilterToJson(v, args, line);
  if (name == "first" || name == "last") {
    KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") {
    KVSERVE_ASSIGN_OR_RETURN(items, Iterate(v, line));
    return Value::List(std::move(items));
  }
  if (name == "reverse") return FilterReverse(v, line);
  if (name == "items") {
    if (v.is_undefined()) return Value::List({});
    if (!v.is_dict())
      return Fail(line, absl::StrCat("items: expected a mapping, got '", v.TypeName(), "'"));
    return DictMethod(v, "items", {}, line);
  }
  if (name == "replace") {
    KVSERVE_ASSIGN_OR_RETURN(old_text, RequiredString(args, 0, "old", line));
    KVSERVE_ASSIGN_OR_RETURN(new_text, RequiredString(args, 1, "new", line));
    const Value* count = args.Get(2, "count");
    std::optional<std::string> replaced = PythonReplace(
        v.ToString(), old_text, new_text,
        count != nullptr && count->is_number() ? count->integer() : -1, kMaxStringBytes);
    if (!replaced.has_value()) return ValueTooLarge(line, "replace");
    return Value::String(*std::move(replaced));
  }
  if (name == "join") return FilterJoin(v, args, line);
  if (name == "int" || name == "float") return FilterNumber(name, v, args);
  if (name == "abs") {
    if (!v.is_number())
      return Fail(line, absl::StrCat("abs: bad operand type '", v.TypeName(), "'"));
    if (v.is_float()) return Value::Float(std::fabs(v.number()));
    if (v.integer() == std::numeric_limits<int64_t>::min())
      return Fail(line, "integer overflow in abs");
    return Value::Int(v.integer() < 0 ? -v.integer() : v.integer());
  }
  if (name == "sum") return FilterSum(v, args, line);
  if (name == "unique") return FilterUnique(v, line);
  if (name == "map") return FilterMap(v, args, line);
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return FilterSelect(name, v, args, line);
  return Fail(line, absl::StrCat("unsupported Jinja filter '", name, "'"));
}

}  // namespace

absl::StatusOr<Template> Template::Parse(std::string_view source, const LexerOptions& options) {
  KVSERVE_ASSIGN_OR_RETURN(tokens, Tokenize(source, options));
  KVSERVE_ASSIGN_OR_RETURN(body, ParseTemplate(tokens));
  Template t;
  t.body_ = std::move(body);
  return t;
}

absl::StatusOr<std::string> Template::Render(const ValueDict& globals) const {
  Renderer renderer;
  auto root = std::make_shared<Scope>();
  root->Set("range", Value::Callable("range", [](const CallArgs& args) -> absl::StatusOr<Value> {
              int64_t start = 0, stop = 0, step = 1;
              for (const Value& a : args.positional) {
                if (!a.is_int() && !a.is_bool())
                  return absl::InvalidArgumentError("range() takes integers");
              }
              if (args.positional.size() == 1) {
                stop = args.positional[0].integer();
              } else if (args.positional.size() >= 2) {
                start = args.positional[0].integer();
                stop = args.positional[1].integer();
                if (args.positional.size() >= 3) step = args.positional[2].integer();
              } else {
                return absl::InvalidArgumentError("range() needs arguments");
              }
              if (step == 0) return absl::InvalidArgumentError("range() step must not be zero");
              ValueList out;
              for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                out.push_back(Value::Int(i));
                if (out.size() > 100000) return absl::InvalidArgumentError("range() is too long");
              }
              return Value::List(std::move(out));
            }));
  root->Set(
      "namespace", Value::Callable("namespace", [](const CallArgs& args) -> absl::StatusOr<Value> {
        ValueDict attributes;
        if (!args.positional.empty()) {
          if (!args.positional[0].is_dict()) {
            return absl::InvalidArgumentError("namespace() takes a dict or keyword arguments");
          }
          attributes = args.positional[0].dict();
        }
        for (const auto& [k, v] : args.keyword) attributes.emplace_back(k, v);
        return Value::Namespace(std::move(attributes));
      }));
  root->Set("dict", Value::Callable("dict", [](const CallArgs& args) -> absl::StatusOr<Value> {
              ValueDict items;
              for (const auto& [k, v] : args.keyword) items.emplace_back(k, v);
              return Value::Dict(std::move(items));
            }));
  for (const auto& [k, v] : globals) root->Set(k, v);
  std::string out;
  KVSERVE_ASSIGN_OR_RETURN(flow, renderer.Exec(body_, root, &out));
  (void)flow;
  return out;
}

}  // namespace kvserve::server::jinja
