// Fuzzes every OpenAI request body the HTTP server accepts, down the path its handler takes
// (server/http/openai_handlers.cc, Prepare): ParseCompletionRequest / ParseChatRequest, the
// model name check, the chat rendered with a Llama 3.1 template, BuildGenerationRequest against
// the demo model's vocabulary, and, for every refusal, the error body ErrorFromStatus writes.
// Byte 0 picks the endpoint (bit 0: chat), the rest is the body.
//
// Checked: an accepted request keeps the validation point's rules (request_checks.h); every
// error body is valid UTF-8 and parses as JSON with an "error" object (clients parse it).
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/json.h"
#include "base/utf8.h"
#include "server/frontend/request_builder.h"
#include "server/http/openai_api.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/request_checks.h"

namespace kvserve::fuzz {
namespace {

using server::openai::Endpoint;

// Prepare's steps up to the submission.
absl::Status Prepare(Endpoint endpoint, absl::string_view body) {
  const server::ServingBackend& backend = FuzzBackend();
  absl::StatusOr<server::openai::ParsedRequest> parsed =
      endpoint == Endpoint::kCompletions ? server::openai::ParseCompletionRequest(body)
                                         : server::openai::ParseChatRequest(body);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->model.empty() && parsed->model != backend.model_info.name) {
    return absl::NotFoundError(absl::StrCat("The model '", parsed->model, "' does not exist"));
  }
  if (endpoint == Endpoint::kChatCompletions) {
    absl::StatusOr<std::string> prompt =
        backend.RenderChat(std::move(parsed->messages), /*add_generation_prompt=*/true);
    if (!prompt.ok()) return prompt.status();
    parsed->params.prompt = *std::move(prompt);
    parsed->params.add_special_tokens = false;
  }
  absl::StatusOr<server::BuiltRequest> built =
      server::BuildGenerationRequest(parsed->params, *backend.codec, backend.limits, parsed->wire);
  if (!built.ok()) return built.status();
  CheckBuiltRequest(*built, *backend.codec, backend.limits);
  return absl::OkStatus();
}

}  // namespace
}  // namespace kvserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  if (size == 0) return 0;
  const auto endpoint = (data[0] & 1) != 0 ? server::openai::Endpoint::kChatCompletions
                                           : server::openai::Endpoint::kCompletions;
  const absl::Status status =
      fuzz::Prepare(endpoint, absl::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  if (status.ok()) return 0;
  const server::openai::ApiError error = server::openai::ErrorFromStatus(status);
  fuzz::FuzzCheck(error.http_status >= 400 && error.http_status < 600, "an error is not 4xx/5xx");
  fuzz::FuzzCheck(base::FindInvalidUtf8(error.body) == std::string::npos,
                  "an error body is not valid UTF-8");
  absl::StatusOr<base::JsonValue> json = base::ParseJson(error.body);
  fuzz::FuzzCheck(json.ok() && json->Find("error") != nullptr && json->Find("error")->is_object(),
                  "an error body is not a JSON object with an \"error\" object");
  return 0;
}
