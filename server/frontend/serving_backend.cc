#include "server/frontend/serving_backend.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kvserve::server {

absl::StatusOr<std::string> ServingBackend::RenderChat(std::vector<ChatMessage> messages,
                                                       bool add_generation_prompt,
                                                       const base::JsonValue* tools) const {
  if (chat_template == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("chat is unavailable: ", chat_template_error));
  }
  ChatTemplateInputs inputs;
  inputs.messages = std::move(messages);
  inputs.add_generation_prompt = add_generation_prompt;
  inputs.bos_token = bos_token;
  inputs.eos_token = eos_token;
  if (tools != nullptr) inputs.tools = *tools;
  return chat_template->Render(inputs);
}

void BackendSlot::Set(std::shared_ptr<ServingBackend> backend) {
  absl::MutexLock lock(&mu_);
  backend_ = std::move(backend);
}

absl::StatusOr<std::shared_ptr<ServingBackend>> BackendSlot::Get() const {
  absl::MutexLock lock(&mu_);
  if (backend_ == nullptr) return absl::UnavailableError("the model is still loading");
  return backend_;
}

}  // namespace kvserve::server
