#include "server/frontend/tool_calls.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/json.h"
#include "constrain/json_schema.h"

namespace kvserve::server {
namespace {

constexpr absl::string_view kHermesOpen = "<tool_call>";
constexpr absl::string_view kHermesClose = "</tool_call>";
constexpr absl::string_view kPythonTag = "<|python_tag|>";
constexpr absl::string_view kMistralMarker = "[TOOL_CALLS]";

std::string NewCallId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char hex[25];
  std::snprintf(hex, sizeof(hex), "%012llx%012llx",
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL),
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return absl::StrCat("call_", hex);
}

absl::string_view Trim(absl::string_view s) { return absl::StripAsciiWhitespace(s); }

// One call object: {"name": "...", "arguments" | "parameters": {...} or its JSON text}.
bool ReadCall(const base::JsonValue& v, ToolCall* call) {
  if (!v.is_object()) return false;
  const base::JsonValue* name = v.Find("name");
  const base::JsonValue* args = v.Find("arguments");
  if (args == nullptr) args = v.Find("parameters");
  if (name == nullptr || !name->is_string() || name->string.empty() || args == nullptr) {
    return false;
  }
  if (args->is_string()) {
    absl::StatusOr<base::JsonValue> parsed = base::ParseJson(args->string);
    if (!parsed.ok() || !parsed->is_object()) return false;
    call->arguments = base::JsonToText(*parsed);
  } else if (args->is_object()) {
    call->arguments = base::JsonToText(*args);
  } else {
    return false;
  }
  call->name = name->string;
  call->id = NewCallId();
  return true;
}

// JSON text holding one call object, or (lists allowed) a list of them.
bool ReadCalls(absl::string_view text, bool lists, std::vector<ToolCall>* calls) {
  absl::StatusOr<base::JsonValue> v = base::ParseJson(Trim(text));
  if (!v.ok()) return false;
  std::vector<ToolCall> read;
  if (v->is_array() && lists) {
    for (const base::JsonValue& item : v->array) {
      if (!ReadCall(item, &read.emplace_back())) return false;
    }
    if (read.empty()) return false;
  } else if (!ReadCall(*v, &read.emplace_back())) {
    return false;
  }
  for (ToolCall& c : read) calls->push_back(std::move(c));
  return true;
}

ToolOutput ParseHermes(absl::string_view text) {
  ToolOutput out;
  std::string content;
  size_t at = 0;
  while (at < text.size()) {
    const size_t open = text.find(kHermesOpen, at);
    if (open == absl::string_view::npos) break;
    const size_t body = open + kHermesOpen.size();
    size_t close = text.find(kHermesClose, body);
    const size_t end = close == absl::string_view::npos ? text.size() : close + kHermesClose.size();
    if (close == absl::string_view::npos) close = text.size();
    absl::StrAppend(&content, text.substr(at, open - at));
    if (!ReadCalls(text.substr(body, close - body), /*lists=*/false, &out.calls)) {
      absl::StrAppend(&content, text.substr(open, end - open));  // not a call: it stays text
    }
    at = end;
  }
  absl::StrAppend(&content, text.substr(std::min(at, text.size())));
  out.content = out.calls.empty() ? content : std::string(Trim(content));
  return out;
}

}  // namespace

const char* ToolCallFormatName(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kNone:
      return "none";
    case ToolCallFormat::kHermes:
      return "hermes";
    case ToolCallFormat::kLlama3Json:
      return "llama3_json";
    case ToolCallFormat::kMistral:
      return "mistral";
  }
  return "none";
}

ToolCallFormat DetectToolCallFormat(absl::string_view source) {
  if (absl::StrContains(source, kHermesOpen)) return ToolCallFormat::kHermes;
  if (absl::StrContains(source, kMistralMarker)) return ToolCallFormat::kMistral;
  if (absl::StrContains(source, kPythonTag) ||
      (absl::StrContains(source, "ipython") && absl::StrContains(source, "tools"))) {
    return ToolCallFormat::kLlama3Json;
  }
  return ToolCallFormat::kNone;
}

ToolOutput ParseToolCalls(ToolCallFormat format, absl::string_view text) {
  ToolOutput out;
  absl::string_view body = Trim(text);
  switch (format) {
    case ToolCallFormat::kNone:
      break;
    case ToolCallFormat::kHermes:
      return ParseHermes(text);
    case ToolCallFormat::kLlama3Json:
      if (absl::StartsWith(body, kPythonTag)) body.remove_prefix(kPythonTag.size());
      if (ReadCalls(body, /*lists=*/false, &out.calls)) return out;
      break;
    case ToolCallFormat::kMistral:
      if (absl::StartsWith(body, kMistralMarker)) body.remove_prefix(kMistralMarker.size());
      if (ReadCalls(body, /*lists=*/true, &out.calls)) return out;
      break;
  }
  out.calls.clear();
  out.content = std::string(text);
  return out;
}

std::string ToolCallStreamer::Push(absl::string_view delta) {
  held_.append(delta.data(), delta.size());
  if (in_call_ || format_ == ToolCallFormat::kNone) {
    if (in_call_) return "";
    std::string all = std::move(held_);
    held_.clear();
    return all;
  }
  if (format_ == ToolCallFormat::kHermes) {
    const size_t open = absl::string_view(held_).find(kHermesOpen);
    if (open != std::string::npos) {
      in_call_ = true;
      std::string before = held_.substr(0, open);
      held_.erase(0, open);
      return before;
    }
    // Hold back a tail that could be the start of the marker.
    size_t keep = 0;
    for (size_t k = std::min(held_.size(), kHermesOpen.size() - 1); k > 0; --k) {
      if (absl::string_view(held_).substr(held_.size() - k) == kHermesOpen.substr(0, k)) {
        keep = k;
        break;
      }
    }
    std::string shown = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return shown;
  }
  // kLlama3Json / kMistral: a call is the whole output, so the first character decides.
  if (!decided_) {
    const absl::string_view rest = Trim(held_);
    if (rest.empty()) return "";
    decided_ = true;
    const char c = rest.front();
    in_call_ = format_ == ToolCallFormat::kLlama3Json ? (c == '{' || c == '<') : c == '[';
    if (in_call_) return "";
  }
  std::string all = std::move(held_);
  held_.clear();
  return all;
}

ToolOutput ToolCallStreamer::Finish() {
  if (!in_call_) {
    ToolOutput out;
    out.content = std::move(held_);
    held_.clear();
    return out;
  }
  ToolOutput out = ParseToolCalls(format_, held_);
  held_.clear();
  return out;
}

absl::StatusOr<std::string> ToolCallGrammar(ToolCallFormat format,
                                            const std::vector<ToolFunction>& tools,
                                            const std::string& only) {
  const char* arguments_key = format == ToolCallFormat::kLlama3Json ? "parameters" : "arguments";
  std::vector<std::string> alternatives;
  for (const ToolFunction& tool : tools) {
    if (!only.empty() && tool.name != only) continue;
    if (absl::StrContains(tool.parameters, "\"$ref\"")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "function '", tool.name, "': parameters with \"$ref\" cannot be forced yet"));
    }
    absl::StatusOr<base::JsonValue> params = base::ParseJson(tool.parameters);
    if (!params.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "function '", tool.name, "': parameters are not JSON: ", params.status().message()));
    }
    // No schema (or {}): any object.
    const std::string schema = params->is_object() && params->object.empty()
                                   ? std::string(R"({"type":"object"})")
                                   : base::JsonToText(*params);
    base::JsonValue name;
    name.type = base::JsonValue::Type::kString;
    name.string = tool.name;
    alternatives.push_back(absl::StrCat(R"({"type":"object","properties":{"name":{"const":)",
                                        base::JsonToText(name), "},\"", arguments_key,
                                        "\":", schema, R"(},"required":["name",")", arguments_key,
                                        R"("],"additionalProperties":false})"));
  }
  if (alternatives.empty()) {
    return absl::InvalidArgumentError(only.empty() ? "no tools to call"
                                                   : absl::StrCat("no tool named '", only, "'"));
  }
  const std::string call_schema =
      alternatives.size() == 1
          ? alternatives[0]
          : absl::StrCat(R"({"anyOf":[)", absl::StrJoin(alternatives, ","), "]}");
  absl::StatusOr<std::string> call = constrain::JsonSchemaToGbnf(call_schema, "tool-call");
  if (!call.ok()) return call.status();
  switch (format) {
    case ToolCallFormat::kHermes:
      return absl::StrCat("root ::= \"<tool_call>\\n\" tool-call \"\\n</tool_call>\"\n", *call);
    case ToolCallFormat::kMistral:
      return absl::StrCat("root ::= \"[TOOL_CALLS]\"? \"[\" tool-call \"]\"\n", *call);
    case ToolCallFormat::kLlama3Json:
      return absl::StrCat("root ::= tool-call\n", *call);
    case ToolCallFormat::kNone:
      break;
  }
  return absl::InvalidArgumentError("the model's chat template has no tool-call format");
}

}  // namespace kvserve::server
