// ChatTemplate: turns a list of chat messages into the prompt text a model was trained on, by
// rendering the model's own Jinja chat template (GGUF `tokenizer.chat_template`, or
// `chat_template` in a Hugging Face folder's tokenizer_config.json) with an embedded Jinja subset.
//
// The subset is what the real templates of Llama 3.x, Qwen2.5/Qwen3, SmolLM2, Mistral and
// Zephyr/TinyLlama use; rendering must equal Python jinja2's output byte for byte (jinja2 is the
// reference: transformers renders chat templates with it). A construct outside the subset is an
// InvalidArgument at Parse time naming the construct and its line, never a garbled prompt.
//
// Thread-safety: a parsed ChatTemplate is immutable; Render may be called from any thread.
#ifndef KVSERVE_SERVER_MODELS_CHAT_TEMPLATE_H_
#define KVSERVE_SERVER_MODELS_CHAT_TEMPLATE_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/json.h"

namespace kvserve::engine {
class GgufFile;
}  // namespace kvserve::engine

namespace kvserve::server {

// A function call the assistant made in an earlier turn (OpenAI's message.tool_calls[i]).
struct ChatToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text; templates see it parsed (as vLLM passes it)
};

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", "tool" (templates may raise on others)
  std::string content;  // "" for an assistant turn with only tool calls
  std::vector<ChatToolCall> tool_calls;  // assistant; the key is absent when empty
  std::string tool_call_id;              // role "tool": the call answered (absent when empty)
  std::string name;                      // role "tool": the function's name (absent when empty)
};

struct ChatTemplateInputs {
  std::vector<ChatMessage> messages;
  // OpenAI's `tools` (a JSON array of {"type": "function", "function": {...}}), or nullopt:
  // templates see None, as transformers passes it without tools.
  std::optional<base::JsonValue> tools;
  bool add_generation_prompt = true;  // end with the header that opens the assistant's turn
  std::string bos_token;              // the vocabulary's BOS/EOS text, as transformers passes them
  std::string eos_token;
};

class ChatTemplate {
 public:
  virtual ~ChatTemplate() = default;

  // Parses a template. Errors: InvalidArgument naming the unsupported construct or syntax error
  // and its line.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Parse(std::string_view source);

  // Renders the prompt. Errors: InvalidArgument for `raise_exception(...)` in the template (with
  // its message, e.g. roles that do not alternate) or a runtime type error naming the expression.
  virtual absl::StatusOr<std::string> Render(const ChatTemplateInputs& inputs) const = 0;
};

// Loading helpers, usable from any model loader.
//
// The `tokenizer.chat_template` string of a GGUF file; nullopt when the key is absent. Errors:
// InvalidArgument when the key is not a string.
absl::StatusOr<std::optional<std::string>> ChatTemplateFromGgufMetadata(
    const engine::GgufFile& file);

// The `chat_template` of a Hugging Face tokenizer_config.json: a string, or a list of
// {"name", "template"} from which "default" is taken (as transformers does). nullopt when the
// file does not exist or has no (or a null) `chat_template`. Errors: unreadable or malformed
// JSON, a list without "default", wrong types — each naming the file.
absl::StatusOr<std::optional<std::string>> ChatTemplateFromTokenizerConfig(
    const std::string& tokenizer_config_path);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_CHAT_TEMPLATE_H_
