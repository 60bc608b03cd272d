#include "server/http/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/json.h"
#include "server/http/json_writer.h"

namespace kvserve::server::openai {
namespace {

using base::JsonValue;
using scheduler::FinishReason;

// OpenAI writes logprobs of impossible tokens as -9999 rather than -infinity (not JSON).
constexpr float kMinLogprob = -9999.0f;

// A member that is present and not null, or nullptr.
const JsonValue* Field(const JsonValue& object, absl::string_view key) {
  const JsonValue* v = object.Find(key);
  return (v == nullptr || v->is_null()) ? nullptr : v;
}

absl::StatusOr<std::optional<double>> NumberField(const JsonValue& object, absl::string_view key) {
  const JsonValue* v = Field(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return InvalidParam(key, absl::StrCat(key, " must be a number"));
  return v->number;
}

absl::StatusOr<std::optional<int64_t>> IntField(const JsonValue& object, absl::string_view key) {
  const JsonValue* v = Field(object, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number() && !v->is_integer && std::abs(v->number) >= 0x1p63) {
    // Written as an integer (or not) but beyond int64: say so rather than "not an integer".
    return InvalidParam(key,
                        absl::StrCat(key, " = ", v->number, " is out of range: must fit 64 bits"));
  }
  if (!v->is_number() || !v->is_integer) {
    return InvalidParam(key, absl::StrCat(key, " must be an integer"));
  }
  return v->integer;
}

absl::StatusOr<std::optional<bool>> BoolField(const JsonValue& object, absl::string_view key) {
  const JsonValue* v = Field(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_bool()) return InvalidParam(key, absl::StrCat(key, " must be a boolean"));
  return v->boolean;
}

absl::StatusOr<JsonValue> ParseBody(absl::string_view body) {
  absl::StatusOr<JsonValue> json = base::ParseJson(body);
  if (!json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body is not valid JSON: ", json.status().message()));
  }
  if (!json->is_object()) {
    return absl::InvalidArgumentError("the request body must be a JSON object");
  }
  return json;
}

// response_format: text (no constraint), json_object, json_schema {name, schema, strict}.
absl::Status SetResponseFormat(const JsonValue& format, GenerationParams* p) {
  using Kind = constrain::ConstraintSpec::Kind;
  const JsonValue* type = format.is_object() ? Field(format, "type") : nullptr;
  if (type == nullptr || !type->is_string()) {
    return InvalidParam("response_format", "response_format must be an object with a \"type\"");
  }
  if (type->string == "text") return absl::OkStatus();
  p->constraint_field = "response_format";
  if (type->string == "json_object") {
    p->constraint.kind = Kind::kJsonObject;
    return absl::OkStatus();
  }
  if (type->string != "json_schema") {
    return InvalidParam("response_format",
                        absl::StrCat("response_format type \"", type->string,
                                     "\" is not supported: text, json_object or json_schema"));
  }
  const JsonValue* spec = Field(format, "json_schema");
  const JsonValue* schema = spec != nullptr && spec->is_object() ? Field(*spec, "schema") : nullptr;
  if (schema == nullptr || !(schema->is_object() || schema->is_bool())) {
    return InvalidParam("response_format",
                        "response_format.json_schema.schema must be a JSON schema (an object)");
  }
  p->constraint.kind = Kind::kJsonSchema;
  p->constraint.text = base::JsonToText(*schema);
  return absl::OkStatus();
}

// vLLM's extensions: guided_json (a schema, as an object or text), guided_regex,
// guided_choice, guided_grammar (GBNF).
absl::Status SetGuided(absl::string_view key, const JsonValue& value, GenerationParams* p) {
  using Kind = constrain::ConstraintSpec::Kind;
  p->constraint_field = std::string(key);
  if (key == "guided_choice") {
    if (!value.is_array()) return InvalidParam(key, "guided_choice must be a list of strings");
    for (const JsonValue& item : value.array) {
      if (!item.is_string()) return InvalidParam(key, "guided_choice must be a list of strings");
      p->constraint.choices.push_back(item.string);
    }
    p->constraint.kind = Kind::kChoice;
    return absl::OkStatus();
  }
  if (key == "guided_json" && (value.is_object() || value.is_bool())) {
    p->constraint.kind = Kind::kJsonSchema;
    p->constraint.text = base::JsonToText(value);
    return absl::OkStatus();
  }
  if (!value.is_string()) {
    return InvalidParam(key, absl::StrCat(key, key == "guided_json" ? " must be a JSON schema "
                                                                      "(an object or its text)"
                                                                    : " must be a string"));
  }
  p->constraint.kind = key == "guided_json"    ? Kind::kJsonSchema
                       : key == "guided_regex" ? Kind::kRegex
                                               : Kind::kGrammar;
  p->constraint.text = value.string;
  return absl::OkStatus();
}

// Structured output, and the fields that would change what the output means which kvserve does
// not serve yet: refused by name, never ignored.
absl::Status ParseConstraint(const JsonValue& body, GenerationParams* p) {
  int given = 0;
  if (const JsonValue* format = Field(body, "response_format"); format != nullptr) {
    if (absl::Status st = SetResponseFormat(*format, p); !st.ok()) return st;
    given += p->constraint.empty() ? 0 : 1;
  }
  for (absl::string_view key : {"guided_json", "guided_regex", "guided_choice", "guided_grammar"}) {
    const JsonValue* value = Field(body, key);
    if (value == nullptr) continue;
    if (++given > 1) {
      return InvalidParam(key, absl::StrCat("set one of response_format, guided_json, "
                                            "guided_regex, guided_choice, guided_grammar; ",
                                            key, " came with another"));
    }
    if (absl::Status st = SetGuided(key, *value, p); !st.ok()) return st;
  }
  for (absl::string_view key : {"functions", "function_call", "guided_whitespace_pattern"}) {
    if (Field(body, key) != nullptr) {
      return InvalidParam(key, absl::StrCat(key, " is not supported"));
    }
  }
  return absl::OkStatus();
}

bool IsFunctionName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

// tools: [{"type": "function", "function": {"name", "description", "parameters"}}].
absl::Status ParseTools(const JsonValue& tools, ParsedRequest* out) {
  if (!tools.is_array()) return InvalidParam("tools", "tools must be a list");
  for (size_t i = 0; i < tools.array.size(); ++i) {
    const JsonValue& tool = tools.array[i];
    const std::string where = absl::StrCat("tools[", i, "]");
    const JsonValue* type = tool.is_object() ? Field(tool, "type") : nullptr;
    const JsonValue* function = tool.is_object() ? Field(tool, "function") : nullptr;
    if (type == nullptr || !type->is_string() || type->string != "function" ||
        function == nullptr || !function->is_object()) {
      return InvalidParam("tools", absl::StrCat(where,
                                                " must be {\"type\": \"function\", "
                                                "\"function\": {...}}"));
    }
    const JsonValue* name = Field(*function, "name");
    if (name == nullptr || !name->is_string() || !IsFunctionName(name->string)) {
      return InvalidParam("tools", absl::StrCat(where,
                                                ".function.name must be 1 to 64 of "
                                                "a-z, A-Z, 0-9, _ and -"));
    }
    for (const ToolFunction& f : out->functions) {
      if (f.name == name->string) {
        return InvalidParam(
            "tools", absl::StrCat(where, ": function '", name->string, "' is defined twice"));
      }
    }
    const JsonValue* parameters = Field(*function, "parameters");
    if (parameters != nullptr && !parameters->is_object()) {
      return InvalidParam("tools", absl::StrCat(where,
                                                ".function.parameters must be a JSON "
                                                "schema (an object)"));
    }
    out->functions.push_back(
        {name->string, parameters != nullptr ? base::JsonToText(*parameters) : "{}"});
  }
  if (!out->functions.empty()) out->tools = tools;
  return absl::OkStatus();
}

// tool_choice: "none", "auto", "required", or {"type": "function", "function": {"name"}}.
absl::Status ParseToolChoice(const JsonValue& choice, ParsedRequest* out) {
  using Choice = ParsedRequest::ToolChoice;
  if (choice.is_string() &&
      (choice.string == "none" || choice.string == "auto" || choice.string == "required")) {
    out->tool_choice = choice.string == "none"   ? Choice::kNone
                       : choice.string == "auto" ? Choice::kAuto
                                                 : Choice::kRequired;
  } else {
    const JsonValue* function = choice.is_object() ? Field(choice, "function") : nullptr;
    const JsonValue* name =
        function != nullptr && function->is_object() ? Field(*function, "name") : nullptr;
    if (name == nullptr || !name->is_string()) {
      return InvalidParam("tool_choice",
                          "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": "
                          "\"function\", \"function\": {\"name\": ...}}");
    }
    out->tool_choice = Choice::kNamed;
    out->tool_choice_name = name->string;
  }
  const bool forced = out->tool_choice == Choice::kRequired || out->tool_choice == Choice::kNamed;
  if (forced && out->functions.empty()) {
    return InvalidParam("tool_choice", "tool_choice asks for a call but no tools are given");
  }
  if (out->tool_choice == Choice::kNamed &&
      std::none_of(out->functions.begin(), out->functions.end(),
                   [&](const ToolFunction& f) { return f.name == out->tool_choice_name; })) {
    return InvalidParam("tool_choice", absl::StrCat("tool_choice names '", out->tool_choice_name,
                                                    "', which is not in tools"));
  }
  if (forced && !out->params.constraint.empty()) {
    return InvalidParam("tool_choice",
                        absl::StrCat("tool_choice \"required\" or a named function cannot be "
                                     "combined with ",
                                     out->params.constraint_field));
  }
  return absl::OkStatus();
}

// Completions take no tools (an empty list, and tool_choice none/auto, ask for nothing).
absl::Status SetTools(const JsonValue& body, ParsedRequest* out) {
  const JsonValue* tools = Field(body, "tools");
  if (tools != nullptr && out->endpoint == Endpoint::kCompletions &&
      !(tools->is_array() && tools->array.empty())) {
    return InvalidParam("tools", "tools are served on /v1/chat/completions");
  }
  if (tools != nullptr) {
    if (absl::Status st = ParseTools(*tools, out); !st.ok()) return st;
  }
  if (const JsonValue* choice = Field(body, "tool_choice"); choice != nullptr) {
    if (absl::Status st = ParseToolChoice(*choice, out); !st.ok()) return st;
  }
  return absl::OkStatus();
}

// The fields both endpoints share: model, sampling, stop, n, stream.
absl::Status ParseCommon(const JsonValue& body, ParsedRequest* out) {
  if (const JsonValue* model = Field(body, "model"); model != nullptr) {
    if (!model->is_string()) return InvalidParam("model", "model must be a string");
    out->model = model->string;
  }
  GenerationParams& p = out->params;
  // Every sampling field of the gRPC API (kvserve.v1.SamplingParams), by the same names; their
  // ranges are checked with the rest (CheckGenerationParams).
  for (auto [key, field] :
       {std::pair{"temperature", &p.temperature}, std::pair{"top_p", &p.top_p},
        std::pair{"min_p", &p.min_p}, std::pair{"repetition_penalty", &p.repetition_penalty},
        std::pair{"presence_penalty", &p.presence_penalty},
        std::pair{"frequency_penalty", &p.frequency_penalty}}) {
    absl::StatusOr<std::optional<double>> num = NumberField(body, key);
    if (!num.ok()) return num.status();
    *field = *num;
  }
  absl::StatusOr<std::optional<int64_t>> integer = IntField(body, "top_k");
  if (!integer.ok()) return integer.status();
  p.top_k = *integer;
  integer = IntField(body, "seed");
  if (!integer.ok()) return integer.status();
  if (integer->has_value()) p.seed = static_cast<uint64_t>(**integer);
  if (const JsonValue* bias = Field(body, "logit_bias"); bias != nullptr) {
    if (!bias->is_object()) return InvalidParam("logit_bias", "logit_bias must be an object");
    for (const auto& [key, value] : bias->object) {
      int32_t id;
      if (!absl::SimpleAtoi(key, &id) || !value.is_number()) {
        return InvalidParam("logit_bias",
                            "logit_bias maps token ids (as strings) to numbers in [-100, 100]");
      }
      p.logit_bias.emplace_back(id, value.number);
    }
  }

  if (const JsonValue* stop = Field(body, "stop"); stop != nullptr) {
    if (stop->is_string()) {
      p.stop.push_back(stop->string);
    } else if (stop->is_array()) {
      for (const JsonValue& item : stop->array) {
        if (!item.is_string()) return InvalidParam("stop", "stop must be a string or strings");
        p.stop.push_back(item.string);
      }
    } else {
      return InvalidParam("stop", "stop must be a string or a list of strings");
    }
  }

  // An extension (as vLLM's): generate past end-of-sequence tokens, for benchmarks and tests.
  absl::StatusOr<std::optional<bool>> ignore_eos = BoolField(body, "ignore_eos");
  if (!ignore_eos.ok()) return ignore_eos.status();
  p.ignore_eos = ignore_eos->value_or(false);

  integer = IntField(body, "n");
  if (!integer.ok()) return integer.status();
  if (integer->has_value()) {
    if (**integer < 1 || **integer > kMaxChoices) {
      return InvalidParam("n",
                          absl::StrCat("n = ", **integer, " is out of range: 1 to ", kMaxChoices));
    }
    out->n = static_cast<int32_t>(**integer);
  }

  if (absl::Status st = ParseConstraint(body, &p); !st.ok()) return st;
  if (absl::Status st = SetTools(body, out); !st.ok()) return st;

  absl::StatusOr<std::optional<bool>> flag = BoolField(body, "stream");
  if (!flag.ok()) return flag.status();
  out->stream = flag->value_or(false);
  if (const JsonValue* options = Field(body, "stream_options"); options != nullptr) {
    if (!options->is_object()) {
      return InvalidParam("stream_options", "stream_options must be an object");
    }
    flag = BoolField(*options, "include_usage");
    if (!flag.ok()) return InvalidParam("stream_options", flag.status().message());
    out->include_usage = out->stream && flag->value_or(false);
  }
  return absl::OkStatus();
}

absl::Status SetMaxTokens(const JsonValue& body, absl::string_view key, ParsedRequest* out) {
  absl::StatusOr<std::optional<int64_t>> max_tokens = IntField(body, key);
  if (!max_tokens.ok()) return max_tokens.status();
  if (!max_tokens->has_value()) return absl::OkStatus();
  out->params.max_tokens = **max_tokens;
  out->wire.max_tokens = std::string(key);
  return absl::OkStatus();
}

// The range is checked with the rest (CheckGenerationParams); top_logprobs is only read then.
void SetLogprobCount(absl::string_view key, int64_t count, ParsedRequest* out) {
  out->params.logprobs = count;
  out->top_logprobs = static_cast<int32_t>(std::clamp<int64_t>(count, 0, engine::kMaxLogprobs));
  out->wire.logprobs = std::string(key);
}

// Token ids of a prompt array; `param` names it in errors.
absl::Status SetPromptIds(const JsonValue& array, ParsedRequest* out) {
  std::vector<int32_t>& ids = out->params.prompt_token_ids.emplace();
  for (const JsonValue& item : array.array) {
    if (!item.is_number() || !item.is_integer || item.integer < 0 ||
        item.integer > std::numeric_limits<int32_t>::max()) {
      return InvalidParam("prompt", "prompt token ids must be non-negative integers");
    }
    ids.push_back(static_cast<int32_t>(item.integer));
  }
  return absl::OkStatus();
}

absl::Status SetPrompt(const JsonValue& prompt, ParsedRequest* out) {
  if (prompt.is_string()) {
    out->params.prompt = prompt.string;
    return absl::OkStatus();
  }
  if (!prompt.is_array()) {
    return InvalidParam("prompt", "prompt must be a string or an array of token ids");
  }
  if (prompt.array.empty()) return InvalidParam("prompt", "prompt is empty");
  if (prompt.array[0].is_number()) return SetPromptIds(prompt, out);
  // A list of prompts: only a single one is served per request.
  if (prompt.array.size() > 1) {
    return InvalidParam("prompt", "a batch of prompts is not supported: send one prompt");
  }
  const JsonValue& only = prompt.array[0];
  if (only.is_string()) {
    out->params.prompt = only.string;
    return absl::OkStatus();
  }
  if (only.is_array()) return SetPromptIds(only, out);
  return InvalidParam("prompt", "prompt must be a string or an array of token ids");
}

// An assistant message's tool_calls [{"id", "type": "function", "function": {"name",
// "arguments" (JSON text)}}], and a tool message's tool_call_id and name.
absl::Status SetToolFields(const JsonValue& m, const std::string& where, ChatMessage* message) {
  if (const JsonValue* calls = Field(m, "tool_calls"); calls != nullptr) {
    if (!calls->is_array())
      return InvalidParam("messages", absl::StrCat(where, ".tool_calls must be a list"));
    for (size_t j = 0; j < calls->array.size(); ++j) {
      const JsonValue& call = calls->array[j];
      const JsonValue* function = call.is_object() ? Field(call, "function") : nullptr;
      const JsonValue* name =
          function != nullptr && function->is_object() ? Field(*function, "name") : nullptr;
      const JsonValue* arguments = name != nullptr ? Field(*function, "arguments") : nullptr;
      const JsonValue* id = call.is_object() ? Field(call, "id") : nullptr;
      if (name == nullptr || !name->is_string() || arguments == nullptr ||
          !arguments->is_string() || (id != nullptr && !id->is_string())) {
        return InvalidParam("messages", absl::StrCat(where, ".tool_calls[", j,
                                                     "] must be {\"id\", \"type\": \"function\", "
                                                     "\"function\": {\"name\", \"arguments\": "
                                                     "JSON text}}"));
      }
      absl::StatusOr<JsonValue> parsed = base::ParseJson(arguments->string);
      if (!parsed.ok()) {
        return InvalidParam(
            "messages", absl::StrCat(where, ".tool_calls[", j, "].function.arguments is not JSON: ",
                                     parsed.status().message()));
      }
      message->tool_calls.push_back(
          {id != nullptr ? id->string : "", name->string, arguments->string});
    }
  }
  for (auto [key, field] :
       {std::pair{"tool_call_id", &message->tool_call_id}, std::pair{"name", &message->name}}) {
    if (const JsonValue* v = Field(m, key); v != nullptr) {
      if (!v->is_string()) {
        return InvalidParam("messages", absl::StrCat(where, ".", key, " must be a string"));
      }
      *field = v->string;
    }
  }
  return absl::OkStatus();
}

void WriteCompletionLogprobs(JsonWriter& w, const std::vector<LogprobEntry>& logprobs,
                             int64_t text_offset) {
  w.BeginObject().Key("tokens").BeginArray();
  for (const LogprobEntry& e : logprobs) w.String(e.token);
  w.EndArray().Key("token_logprobs").BeginArray();
  for (const LogprobEntry& e : logprobs) w.Double(std::max(e.logprob, kMinLogprob));
  w.EndArray().Key("top_logprobs").BeginArray();
  for (const LogprobEntry& e : logprobs) {
    // An object keyed by token text (as OpenAI's): equal texts keep the first (likeliest).
    w.BeginObject();
    std::vector<std::string> seen;
    for (const auto& [token, logprob] : e.top) {
      const std::string key = JsonQuote(token);
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
      seen.push_back(key);
      w.Key(token).Double(std::max(logprob, kMinLogprob));
    }
    w.EndObject();
  }
  w.EndArray().Key("text_offset").BeginArray();
  for (const LogprobEntry& e : logprobs) {
    w.Int(text_offset);
    text_offset += static_cast<int64_t>(e.token.size());
  }
  w.EndArray().EndObject();
}

void WriteBytes(JsonWriter& w, absl::string_view token) {
  w.BeginArray();
  for (const char c : token) w.Int(static_cast<unsigned char>(c));
  w.EndArray();
}

void WriteChatLogprobs(JsonWriter& w, const std::vector<LogprobEntry>& logprobs) {
  w.BeginObject().Key("content").BeginArray();
  for (const LogprobEntry& e : logprobs) {
    w.BeginObject().Key("token").String(e.token).Key("logprob").Double(
        std::max(e.logprob, kMinLogprob));
    w.Key("bytes");
    WriteBytes(w, e.token);
    w.Key("top_logprobs").BeginArray();
    for (const auto& [token, logprob] : e.top) {
      w.BeginObject().Key("token").String(token).Key("logprob").Double(
          std::max(logprob, kMinLogprob));
      w.Key("bytes");
      WriteBytes(w, token);
      w.EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray().Key("refusal").Null().EndObject();
}

// [{"id", "type": "function", "function": {"name", "arguments"}}], streamed ones with "index".
void WriteToolCalls(JsonWriter& w, const std::vector<ToolCall>& calls, bool with_index) {
  w.BeginArray();
  for (size_t i = 0; i < calls.size(); ++i) {
    w.BeginObject();
    if (with_index) w.Key("index").Int(static_cast<int64_t>(i));
    w.Key("id").String(calls[i].id).Key("type").String("function");
    w.Key("function").BeginObject().Key("name").String(calls[i].name);
    w.Key("arguments").String(calls[i].arguments).EndObject().EndObject();
  }
  w.EndArray();
}

void WriteHead(JsonWriter& w, const ResponseMeta& meta, bool chunk) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  w.Key("id").String(meta.id);
  w.Key("object").String(chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                              : "text_completion");
  w.Key("created").Int(meta.created).Key("model").String(meta.model);
}

void WriteUsage(JsonWriter& w, const Usage& usage) {
  w.BeginObject()
      .Key("prompt_tokens")
      .Int(usage.prompt_tokens)
      .Key("completion_tokens")
      .Int(usage.completion_tokens)
      .Key("total_tokens")
      .Int(int64_t{usage.prompt_tokens} + usage.completion_tokens)
      .EndObject();
}

}  // namespace

const WireRules& OpenAiWireRules() {
  static const WireRules* rules = [] {
    auto* w = new WireRules;
    w->prompt_token_ids = "prompt";  // token ids are sent as the prompt
    w->max_temperature = 2;          // OpenAI's documented range is [0, 2]
    return w;
  }();
  return *rules;
}

absl::StatusOr<ParsedRequest> ParseCompletionRequest(absl::string_view text) {
  absl::StatusOr<JsonValue> body = ParseBody(text);
  if (!body.ok()) return body.status();
  ParsedRequest out;
  out.endpoint = Endpoint::kCompletions;
  if (absl::Status st = ParseCommon(*body, &out); !st.ok()) return st;
  const JsonValue* prompt = Field(*body, "prompt");
  if (prompt == nullptr) return InvalidParam("prompt", "prompt is missing");
  if (absl::Status st = SetPrompt(*prompt, &out); !st.ok()) return st;
  // OpenAI's default for the legacy completions endpoint.
  out.params.max_tokens = 16;
  if (absl::Status st = SetMaxTokens(*body, "max_tokens", &out); !st.ok()) return st;
  absl::StatusOr<std::optional<int64_t>> logprobs = IntField(*body, "logprobs");
  if (!logprobs.ok()) return logprobs.status();
  if (logprobs->has_value()) {
    out.logprobs = true;
    SetLogprobCount("logprobs", **logprobs, &out);
  }
  absl::StatusOr<std::optional<bool>> echo = BoolField(*body, "echo");
  if (!echo.ok()) return echo.status();
  out.echo = echo->value_or(false);
  if (out.echo && out.logprobs) {
    return InvalidParam("echo",
                        "echo with logprobs needs the prompt's logprobs, which are not "
                        "supported yet: send echo or logprobs");
  }
  if (const JsonValue* suffix = Field(*body, "suffix");
      suffix != nullptr && !(suffix->is_string() && suffix->string.empty())) {
    return InvalidParam("suffix", "suffix is not supported");
  }
  absl::StatusOr<std::optional<int64_t>> best_of = IntField(*body, "best_of");
  if (!best_of.ok()) return best_of.status();
  if (best_of->has_value() && **best_of != 1) {
    return InvalidParam("best_of", "best_of is not supported: only 1");
  }
  if (absl::Status st = CheckGenerationParams(out.params, out.wire); !st.ok()) return st;
  return out;
}

absl::StatusOr<ParsedRequest> ParseChatRequest(absl::string_view text) {
  absl::StatusOr<JsonValue> body = ParseBody(text);
  if (!body.ok()) return body.status();
  ParsedRequest out;
  out.endpoint = Endpoint::kChatCompletions;
  out.wire.prompt = "messages";  // the prompt is the rendered messages
  if (absl::Status st = ParseCommon(*body, &out); !st.ok()) return st;

  const JsonValue* messages = Field(*body, "messages");
  if (messages == nullptr) return InvalidParam("messages", "messages is missing");
  if (!messages->is_array() || messages->array.empty()) {
    return InvalidParam("messages", "messages must be a non-empty array");
  }
  for (size_t i = 0; i < messages->array.size(); ++i) {
    const JsonValue& m = messages->array[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return InvalidParam("messages", absl::StrCat(where, " must be an object"));
    const JsonValue* role = Field(m, "role");
    if (role == nullptr || !role->is_string() || role->string.empty()) {
      return InvalidParam("messages", absl::StrCat(where, ".role must be a non-empty string"));
    }
    ChatMessage message;
    message.role = role->string;
    if (absl::Status st = SetToolFields(m, where, &message); !st.ok()) return st;
    if (const JsonValue* content = Field(m, "content"); content == nullptr) {
      // An assistant turn may have no content (only tool calls): templates get "" (Qwen3's
      // tests `'</think>' in content`, which None would fail).
    } else if (content->is_string()) {
      message.content = content->string;
    } else if (content->is_array()) {
      std::vector<std::string> texts;
      for (size_t j = 0; j < content->array.size(); ++j) {
        const JsonValue& part = content->array[j];
        const JsonValue* type = part.is_object() ? Field(part, "type") : nullptr;
        const JsonValue* part_text = part.is_object() ? Field(part, "text") : nullptr;
        if (type == nullptr || !type->is_string() || type->string != "text" ||
            part_text == nullptr || !part_text->is_string()) {
          return InvalidParam("messages", absl::StrCat(where, ".content[", j,
                                                       "]: only {\"type\": \"text\", \"text\": "
                                                       "...} parts are supported"));
        }
        texts.push_back(part_text->string);
      }
      message.content = absl::StrJoin(texts, "\n");
    } else {
      return InvalidParam("messages",
                          absl::StrCat(where, ".content must be a string or a list of parts"));
    }
    out.messages.push_back(std::move(message));
  }

  if (absl::Status st = SetMaxTokens(*body, "max_tokens", &out); !st.ok()) return st;
  if (absl::Status st = SetMaxTokens(*body, "max_completion_tokens", &out); !st.ok()) return st;

  absl::StatusOr<std::optional<bool>> logprobs = BoolField(*body, "logprobs");
  if (!logprobs.ok()) return logprobs.status();
  out.logprobs = logprobs->value_or(false);
  absl::StatusOr<std::optional<int64_t>> top = IntField(*body, "top_logprobs");
  if (!top.ok()) return top.status();
  if (top->has_value()) {
    if (!out.logprobs) {
      return InvalidParam("top_logprobs", "top_logprobs requires logprobs to be true");
    }
    SetLogprobCount("top_logprobs", **top, &out);
  }
  if (absl::Status st = CheckGenerationParams(out.params, out.wire); !st.ok()) return st;
  return out;
}

ApiError ErrorFromStatus(const absl::Status& status) {
  ApiError error;
  absl::string_view type = "server_error";
  absl::string_view code;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      error.http_status = 400;
      type = "invalid_request_error";
      break;
    case absl::StatusCode::kUnauthenticated:
      error.http_status = 401;
      type = "invalid_request_error";
      code = "invalid_api_key";
      break;
    case absl::StatusCode::kNotFound:
      error.http_status = 404;
      type = "invalid_request_error";
      code = "model_not_found";
      break;
    case absl::StatusCode::kOutOfRange:
      // The request does not fit the context: 400, as OpenAI and vLLM answer it (413 is the
      // HTTP server's, for a body over --http-max-body-bytes).
      error.http_status = 400;
      type = "invalid_request_error";
      code = "context_length_exceeded";
      break;
    case absl::StatusCode::kResourceExhausted:
      error.http_status = 429;
      type = "rate_limit_error";
      code = "queue_full";
      break;
    case absl::StatusCode::kUnavailable:
      error.http_status = 503;
      code = "unavailable";
      break;
    default:
      error.http_status = 500;
      break;
  }
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject();
  w.Key("message").String(status.message()).Key("type").String(type).Key("param");
  if (std::optional<std::string> param = ErrorParam(status); param.has_value()) {
    w.String(*param);
  } else {
    w.Null();
  }
  w.Key("code");
  if (code.empty()) {
    w.Null();
  } else {
    w.String(code);
  }
  w.EndObject().EndObject();
  error.body = w.Take();
  return error;
}

absl::string_view OpenAiFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
    case FinishReason::kContextLength:
      return "length";
    case FinishReason::kStop:
    case FinishReason::kStopString:
    case FinishReason::kCancelled:
    case FinishReason::kError:
      return "stop";
  }
  return "stop";
}

std::string ResponseBody(const ResponseMeta& meta, const std::vector<ChoiceBody>& choices,
                         bool with_logprobs, const Usage& usage) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  JsonWriter w;
  w.BeginObject();
  WriteHead(w, meta, /*chunk=*/false);
  w.Key("choices").BeginArray();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceBody& c = choices[i];
    w.BeginObject().Key("index").Int(static_cast<int64_t>(i));
    if (chat) {
      w.Key("message").BeginObject().Key("role").String("assistant").Key("content");
      if (!c.tool_calls.empty() && c.text.empty()) {
        w.Null();
      } else {
        w.String(c.text);
      }
      if (!c.tool_calls.empty()) {
        w.Key("tool_calls");
        WriteToolCalls(w, c.tool_calls, /*with_index=*/false);
      }
      w.EndObject();
    } else {
      w.Key("text").String(c.text);
    }
    w.Key("logprobs");
    if (!with_logprobs) {
      w.Null();
    } else if (chat) {
      WriteChatLogprobs(w, c.logprobs);
    } else {
      WriteCompletionLogprobs(w, c.logprobs, 0);
    }
    w.Key("finish_reason")
        .String(c.tool_calls.empty() ? OpenAiFinishReason(c.finish_reason) : "tool_calls");
    w.EndObject();
  }
  w.EndArray();
  w.Key("usage");
  WriteUsage(w, usage);
  w.EndObject();
  return w.Take();
}

std::string ResponseBody(const ResponseMeta& meta, absl::string_view text,
                         FinishReason finish_reason, bool with_logprobs,
                         const std::vector<LogprobEntry>& logprobs, const Usage& usage) {
  return ResponseBody(meta, {ChoiceBody{std::string(text), finish_reason, logprobs}}, with_logprobs,
                      usage);
}

std::string ChunkBody(const ResponseMeta& meta, const ChunkContent& content, bool include_usage) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  JsonWriter w;
  w.BeginObject();
  WriteHead(w, meta, /*chunk=*/true);
  w.Key("choices").BeginArray().BeginObject().Key("index").Int(content.index);
  if (chat) {
    w.Key("delta").BeginObject();
    if (content.role) w.Key("role").String("assistant");
    if (content.has_text) w.Key("content").String(content.text);
    if (!content.tool_calls.empty()) {
      w.Key("tool_calls");
      WriteToolCalls(w, content.tool_calls, /*with_index=*/true);
    }
    w.EndObject();
  } else {
    w.Key("text").String(content.text);
  }
  w.Key("logprobs");
  if (!content.with_logprobs) {
    w.Null();
  } else if (chat) {
    WriteChatLogprobs(w, content.logprobs);
  } else {
    WriteCompletionLogprobs(w, content.logprobs, content.text_offset);
  }
  w.Key("finish_reason");
  if (content.finish_reason == nullptr) {
    w.Null();
  } else {
    w.String(content.tool_calls_finish ? "tool_calls" : OpenAiFinishReason(*content.finish_reason));
  }
  w.EndObject().EndArray();
  if (include_usage) w.Key("usage").Null();
  w.EndObject();
  return w.Take();
}

std::string UsageChunkBody(const ResponseMeta& meta, const Usage& usage) {
  JsonWriter w;
  w.BeginObject();
  WriteHead(w, meta, /*chunk=*/true);
  w.Key("choices").BeginArray().EndArray().Key("usage");
  WriteUsage(w, usage);
  w.EndObject();
  return w.Take();
}

std::string ModelsBody(absl::string_view model_id, int64_t created) {
  JsonWriter w;
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  w.BeginObject()
      .Key("id")
      .String(model_id)
      .Key("object")
      .String("model")
      .Key("created")
      .Int(created)
      .Key("owned_by")
      .String("kvserve")
      .EndObject();
  w.EndArray().EndObject();
  return w.Take();
}

std::string SseEvent(absl::string_view json) { return absl::StrCat("data: ", json, "\n\n"); }

}  // namespace kvserve::server::openai
