// Value: the data model of kvserve's embedded Jinja subset, with Python/jinja2 semantics where a
// chat template can observe them: truthiness, `==`, ordering, `str()` / `repr()` text (as
// `{{ x }}` and `{{ [x] }}` print), and json.dumps text (the `tojson` filter).
//
// Kinds: undefined (jinja2's default Undefined: prints "", falsy, iterates as empty, but any
// attribute or arithmetic on it is an error), none, bool, int (int64), float (double), string
// (UTF-8), list (also stands for Python tuples), dict (string keys, insertion order), namespace
// (jinja2's namespace(): the one mutable object) and callable (functions, bound methods, macros).
//
// Ownership: lists and dicts are immutable once built and shared by reference; a namespace's
// attributes are shared and mutable (assignments through any copy are seen by all). Strings are
// copied. Thread-safety: values reachable from one Render call belong to that call only.
#ifndef KVSERVE_SERVER_MODELS_JINJA_VALUE_H_
#define KVSERVE_SERVER_MODELS_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace kvserve::server::jinja {

class Value;
using ValueList = std::vector<Value>;
using ValueDict = std::vector<std::pair<std::string, Value>>;  // insertion order, unique keys

// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index` or named `name`, or nullptr.
  const Value* Get(size_t index, std::string_view name) const;
};
using Function = std::function<absl::StatusOr<Value>(const CallArgs&)>;

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kCallable
  };

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(ValueList items);
  static Value Dict(ValueDict items);
  static Value Namespace(ValueDict attributes);
  static Value Callable(std::string name, Function fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // int, float or bool (bool is an int in Python).
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool boolean() const { return bool_; }
  int64_t integer() const { return is_bool() ? (bool_ ? 1 : 0) : int_; }
  double number() const { return is_float() ? float_ : static_cast<double>(integer()); }
  const std::string& string() const { return string_; }
  const ValueList& list() const { return *list_; }
  const ValueDict& dict() const { return *dict_; }  // also a namespace's attributes
  ValueDict& mutable_namespace() const { return *dict_; }
  const std::string& callable_name() const { return string_; }
  absl::StatusOr<Value> Call(const CallArgs& args) const { return (*function_)(args); }

  // Dict or namespace member, or nullptr.
  const Value* Find(std::string_view key) const;

  // Python truthiness (undefined is falsy).
  bool Truthy() const;
  // Python `==` (1 == 1.0 == True; lists and dicts element-wise; undefined equals undefined).
  bool Equals(const Value& other) const;
  // Python str(): what `{{ x }}` prints ("" for undefined).
  std::string ToString() const;
  // Python repr(): how values print inside lists and dicts.
  std::string Repr() const;
  // jinja2's type names for errors: "str", "int", "list", "dict", "undefined", ...
  const char* TypeName() const;
  // Levels of lists and dicts inside this value (0 for a scalar, 1 for [1, 2]). Printing,
  // comparing and destroying recurse this deep; the renderer refuses values past a limit.
  int nesting() const { return nesting_; }
  // What walking this value costs, counted as if nothing were shared: one per list, dict and
  // scalar inside it plus the bytes of its strings and keys (saturating at 2^62). Lists are
  // shared, so `[a, a]` doubles the weight but not the memory, and printing, comparing or
  // serializing a value doubled 40 times would run for hours; the renderer refuses values past
  // a limit.
  uint64_t weight() const { return weight_; }

 private:
  Kind kind_ = Kind::kUndefined;
  int nesting_ = 0;
  uint64_t weight_ = 1;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<Function> function_;
};

// Python's repr() of a float: shortest round-trip digits, "1.0", "1e+16", "inf", "nan".
std::string PythonFloatRepr(double f);
// Python's repr() of a str: single quotes unless the text holds ' and no ".
std::string PythonStringRepr(std::string_view s);

// json.dumps(value, ensure_ascii=False, indent=indent, separators=..., sort_keys=sort_keys) as
// transformers' `tojson` calls it: indent < 0 means None (one line, ", " and ": "); otherwise
// newlines and `indent` spaces per level, "," and ": ". Errors: values JSON cannot hold.
absl::StatusOr<std::string> ToJson(const Value& value, int indent, bool sort_keys);

// Unicode helpers on UTF-8 text (invalid bytes count as one code point each).
std::vector<std::string_view> SplitCodePoints(std::string_view s);
// Python str.isspace() for one code point's UTF-8 bytes.
bool IsPythonSpace(std::string_view code_point);

}  // namespace kvserve::server::jinja

#endif  // KVSERVE_SERVER_MODELS_JINJA_VALUE_H_
