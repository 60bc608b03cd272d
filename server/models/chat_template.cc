#include "server/models/chat_template.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/json.h"
#include "engine/gguf.h"
#include "server/models/jinja/interpreter.h"
#include "server/models/model_source.h"

namespace kvserve::server {
namespace {

using jinja::CallArgs;
using jinja::Value;
using jinja::ValueDict;
using jinja::ValueList;

// Python's datetime.now().strftime(format), as transformers' strftime_now helper.
absl::StatusOr<Value> StrftimeNow(const CallArgs& args) {
  const Value* format = args.Get(0, "format");
  if (format == nullptr || !format->is_string()) {
    return absl::InvalidArgumentError("strftime_now(format) needs a format string");
  }
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[512];
  const size_t n = std::strftime(buf, sizeof(buf), format->string().c_str(), &local);
  return Value::String(std::string(buf, n));
}

// A JSON value as the template sees it (what json.loads gives Python's jinja2). The reader's
// nesting limit (64) bounds the recursion.
Value JsonToValue(const base::JsonValue& v) {
  switch (v.type) {
    case base::JsonValue::Type::kNull:
      return Value::None();
    case base::JsonValue::Type::kBool:
      return Value::Bool(v.boolean);
    case base::JsonValue::Type::kNumber:
      return v.is_integer ? Value::Int(v.integer) : Value::Float(v.number);
    case base::JsonValue::Type::kString:
      return Value::String(v.string);
    case base::JsonValue::Type::kArray: {
      ValueList items;
      for (const base::JsonValue& item : v.array) items.push_back(JsonToValue(item));
      return Value::List(std::move(items));
    }
    case base::JsonValue::Type::kObject: {
      ValueDict items;
      for (const auto& [key, item] : v.object) items.emplace_back(key, JsonToValue(item));
      return Value::Dict(std::move(items));
    }
  }
  return Value::None();
}

// One message as transformers passes it; a tool call's arguments parsed from their JSON text.
absl::StatusOr<Value> MessageValue(const ChatMessage& m) {
  ValueDict message = {{"role", Value::String(m.role)}, {"content", Value::String(m.content)}};
  if (!m.tool_calls.empty()) {
    ValueList calls;
    for (const ChatToolCall& call : m.tool_calls) {
      absl::StatusOr<base::JsonValue> arguments = base::ParseJson(call.arguments);
      if (!arguments.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tool call '", call.name,
                         "': arguments are not valid JSON: ", arguments.status().message()));
      }
      calls.push_back(
          Value::Dict({{"id", Value::String(call.id)},
                       {"type", Value::String("function")},
                       {"function", Value::Dict({{"name", Value::String(call.name)},
                                                 {"arguments", JsonToValue(*arguments)}})}}));
    }
    message.emplace_back("tool_calls", Value::List(std::move(calls)));
  }
  if (!m.tool_call_id.empty()) message.emplace_back("tool_call_id", Value::String(m.tool_call_id));
  if (!m.name.empty()) message.emplace_back("name", Value::String(m.name));
  return Value::Dict(std::move(message));
}

class JinjaChatTemplate final : public ChatTemplate {
 public:
  explicit JinjaChatTemplate(jinja::Template t) : template_(std::move(t)) {}

  absl::StatusOr<std::string> Render(const ChatTemplateInputs& inputs) const override {
    ValueList messages;
    for (const ChatMessage& m : inputs.messages) {
      absl::StatusOr<Value> message = MessageValue(m);
      if (!message.ok()) return message.status();
      messages.push_back(*std::move(message));
    }
    // What transformers' apply_chat_template passes (tools and documents are None without
    // tools), plus its two helper functions.
    ValueDict globals = {
        {"messages", Value::List(std::move(messages))},
        {"tools", inputs.tools.has_value() ? JsonToValue(*inputs.tools) : Value::None()},
        {"documents", Value::None()},
        {"add_generation_prompt", Value::Bool(inputs.add_generation_prompt)},
        {"bos_token", Value::String(inputs.bos_token)},
        {"eos_token", Value::String(inputs.eos_token)},
        {"raise_exception",
         Value::Callable("raise_exception",
                         [](const CallArgs& args) -> absl::StatusOr<Value> {
                           const Value* message = args.Get(0, "message");
                           return absl::InvalidArgumentError(absl::StrCat(
                               "the chat template refused the messages: ",
                               message != nullptr ? message->ToString() : "(no message)"));
                         })},
        {"strftime_now", Value::Callable("strftime_now", StrftimeNow)},
    };
    return template_.Render(globals);
  }

 private:
  jinja::Template template_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(std::string_view source) {
  // transformers compiles chat templates with trim_blocks=True, lstrip_blocks=True.
  jinja::LexerOptions options;
  options.trim_blocks = true;
  options.lstrip_blocks = true;
  absl::StatusOr<jinja::Template> t = jinja::Template::Parse(source, options);
  if (!t.ok()) return t.status();
  return std::make_unique<JinjaChatTemplate>(*std::move(t));
}

absl::StatusOr<std::optional<std::string>> ChatTemplateFromGgufMetadata(
    const engine::GgufFile& file) {
  const std::string kKey = "tokenizer.chat_template";
  if (file.FindMetadata(kKey) == nullptr) return std::nullopt;
  absl::StatusOr<std::string> text = file.GetString(kKey);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": ", kKey, " is not a string: ", text.status().message()));
  }
  return *std::move(text);
}

absl::StatusOr<std::optional<std::string>> ChatTemplateFromTokenizerConfig(
    const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  absl::StatusOr<base::JsonValue> json = base::ParseJson(text);
  if (!json.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", json.status().message()));
  }
  if (!json->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": top level is not an object"));
  }
  // One implementation of the string-or-named-list rule, shared with the model loader.
  absl::StatusOr<std::optional<std::string>> source = ChatTemplateFromTokenizerConfig(*json);
  if (!source.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", source.status().message()));
  }
  return source;
}

}  // namespace kvserve::server
