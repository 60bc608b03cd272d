// Fuzzes the Jinja subset that renders chat templates: the lexer (with and without jinja2's
// trim_blocks / lstrip_blocks), the parser, and the interpreter, through ChatTemplate with the
// globals a chat request gives it (a conversation of four messages, BOS/EOS texts,
// raise_exception). The input is the template source. Every template must parse or be refused,
// and every parsed template must render or fail with a status: no crash, no overflowed stack,
// no unbounded time or memory.
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/models/chat_template.h"
#include "server/models/jinja/lexer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve::server;
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  // The lexer without whitespace control (ChatTemplate only lexes with it on).
  (void)jinja::Tokenize(source, jinja::LexerOptions{.trim_blocks = false, .lstrip_blocks = false});

  absl::StatusOr<std::unique_ptr<ChatTemplate>> chat = ChatTemplate::Parse(source);
  if (!chat.ok()) return 0;
  ChatTemplateInputs inputs;
  inputs.messages = {{"system", "You are terse."},
                     {"user", "Hi <b>there</b> {{ not a tag }}"},
                     {"assistant", "Hello.\n"},
                     {"user", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 2+2?"}};
  inputs.bos_token = "<s>";
  inputs.eos_token = "</s>";
  for (const bool add_generation_prompt : {true, false}) {
    inputs.add_generation_prompt = add_generation_prompt;
    (void)(*chat)->Render(inputs);
  }
  return 0;
}
