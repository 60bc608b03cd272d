// Renders chat-template test cases with kvserve's ChatTemplate, for chat_template_test.py
// (which renders the same cases with Python jinja2 and compares byte for byte).
//
//   chat_template_tool (--gguf FILE | --tokenizer-config FILE | --template-file FILE) CASES OUT
//
// CASES: {"bos_token": "...", "eos_token": "...", "cases": [{"messages": [{"role", "content",
// optional "tool_calls": [{"id", "function": {"name", "arguments" (JSON text)}}],
// "tool_call_id"}], "add_generation_prompt": bool, optional "tools": [...]}, ...]}. OUT: one line
// per case, "OK <hex of the prompt>" or "ERROR <hex of the message>"; or a single "PARSE_ERROR
// <hex>" line when the template does not parse, or "NO_TEMPLATE" when the source has none.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "base/json.h"
#include "engine/gguf.h"
#include "server/models/chat_template.h"

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int Usage() {
  std::cerr << "usage: chat_template_tool (--gguf|--tokenizer-config|--template-file) FILE "
               "CASES OUT\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using kvserve::server::ChatTemplate;
  if (argc != 5) return Usage();
  const std::string mode = argv[1], source_path = argv[2], cases_path = argv[3];
  std::ofstream out(argv[4], std::ios::binary);
  absl::StatusOr<std::optional<std::string>> source;
  if (mode == "--gguf") {
    auto file = kvserve::engine::GgufFile::Open(source_path);
    if (!file.ok()) {
      std::cerr << file.status() << "\n";
      return 1;
    }
    source = kvserve::server::ChatTemplateFromGgufMetadata(**file);
  } else if (mode == "--tokenizer-config") {
    source = kvserve::server::ChatTemplateFromTokenizerConfig(source_path);
  } else if (mode == "--template-file") {
    source = std::optional<std::string>(ReadFile(source_path));
  } else {
    return Usage();
  }
  if (!source.ok()) {
    std::cerr << source.status() << "\n";
    return 1;
  }
  if (!source->has_value()) {
    out << "NO_TEMPLATE\n";
    return 0;
  }
  absl::StatusOr<std::unique_ptr<ChatTemplate>> parsed = ChatTemplate::Parse(**source);
  if (!parsed.ok()) {
    out << "PARSE_ERROR " << absl::BytesToHexString(parsed.status().ToString()) << "\n";
    return 0;
  }
  absl::StatusOr<kvserve::base::JsonValue> cases = kvserve::base::ParseJson(ReadFile(cases_path));
  if (!cases.ok()) {
    std::cerr << cases.status() << "\n";
    return 1;
  }
  kvserve::server::ChatTemplateInputs inputs;
  inputs.bos_token = cases->Find("bos_token")->string;
  inputs.eos_token = cases->Find("eos_token")->string;
  for (const kvserve::base::JsonValue& c : cases->Find("cases")->array) {
    inputs.messages.clear();
    for (const kvserve::base::JsonValue& m : c.Find("messages")->array) {
      kvserve::server::ChatMessage& message = inputs.messages.emplace_back();
      message.role = m.Find("role")->string;
      message.content = m.Find("content")->string;
      if (const kvserve::base::JsonValue* calls = m.Find("tool_calls"); calls != nullptr) {
        for (const kvserve::base::JsonValue& call : calls->array) {
          const kvserve::base::JsonValue* f = call.Find("function");
          message.tool_calls.push_back(
              {call.Find("id")->string, f->Find("name")->string, f->Find("arguments")->string});
        }
      }
      if (const kvserve::base::JsonValue* id = m.Find("tool_call_id"); id != nullptr) {
        message.tool_call_id = id->string;
      }
    }
    // "tools": the request's list, passed to the template as is.
    inputs.tools.reset();
    if (const kvserve::base::JsonValue* tools = c.Find("tools"); tools != nullptr) {
      inputs.tools = *tools;
    }
    inputs.add_generation_prompt = c.Find("add_generation_prompt")->boolean;
    absl::StatusOr<std::string> rendered = (*parsed)->Render(inputs);
    if (rendered.ok()) {
      out << "OK " << absl::BytesToHexString(*rendered) << "\n";
    } else {
      out << "ERROR " << absl::BytesToHexString(rendered.status().ToString()) << "\n";
    }
  }
  return 0;
}
