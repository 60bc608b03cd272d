// Tool calling: how a model writes a function call, found from its chat template, and the calls
// read back out of its output, whole or while it streams.
//
// Formats (the template's own instructions decide which one the model was trained on):
//   kHermes      Qwen2.5 / Qwen3 / Hermes: <tool_call>\n{"name": ..., "arguments": {...}}\n
//                </tool_call>, any number, after optional text.
//   kLlama3Json  Llama 3.1 / 3.2: the whole output is {"name": ..., "parameters": {...}},
//                optionally after <|python_tag|>.
//   kMistral     Mistral v0.3+: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]; a
//                vocabulary where [TOOL_CALLS] is a control token drops it from the text, so a
//                bare JSON list of calls is read too.
// A call is read only when its JSON parses and has a string "name" and an object of arguments;
// otherwise the text stays content.
//
// Forcing a call (tool_choice "required" or a named function): ToolCallGrammar is the GBNF of
// one call in the format, its arguments following the function's parameters schema, so the
// call always parses and validates.
//
// Thread-safety: pure functions; a ToolCallStreamer belongs to one stream.
#ifndef KVSERVE_SERVER_FRONTEND_TOOL_CALLS_H_
#define KVSERVE_SERVER_FRONTEND_TOOL_CALLS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvserve::server {

enum class ToolCallFormat { kNone, kHermes, kLlama3Json, kMistral };

const char* ToolCallFormatName(ToolCallFormat format);

// The format a chat template teaches (by the markers its source writes); kNone when it shows
// no tool support.
ToolCallFormat DetectToolCallFormat(absl::string_view template_source);

// A function the client offers (OpenAI's tools[i].function).
struct ToolFunction {
  std::string name;
  std::string parameters;  // a JSON schema as JSON text; "{}" when absent
};

struct ToolCall {
  std::string id;  // "call_" and 24 hex digits
  std::string name;
  std::string arguments;  // compact JSON text of an object
};

struct ToolOutput {
  std::string content;  // the text that is not a call (trimmed when calls were found)
  std::vector<ToolCall> calls;
};

// Reads the calls of a complete output.
ToolOutput ParseToolCalls(ToolCallFormat format, absl::string_view text);

// Streaming: Push returns the content that can be shown now (text that cannot be, or start, a
// call); Finish returns the rest, with the calls.
class ToolCallStreamer {
 public:
  explicit ToolCallStreamer(ToolCallFormat format) : format_(format) {}

  std::string Push(absl::string_view delta);
  ToolOutput Finish();

 private:
  const ToolCallFormat format_;
  bool in_call_ = false;  // from here on everything is held until Finish
  bool decided_ = false;  // kLlama3Json / kMistral: the first non-space character was seen
  std::string held_;      // not yet shown
};

// GBNF for an output that is exactly one call of `only` (non-empty: that function) or of any of
// `tools`. Errors (InvalidArgument): an unknown `only`, no tools, a parameters schema the
// translator refuses (its message), or one with "$ref" (not supported inside tools yet).
absl::StatusOr<std::string> ToolCallGrammar(ToolCallFormat format,
                                            const std::vector<ToolFunction>& tools,
                                            const std::string& only);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_TOOL_CALLS_H_
