#include "tests/fuzz/request_checks.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "base/utf8.h"
#include "server/models/chat_template.h"
#include "server/models/text_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace kvserve::fuzz {

void CheckBuiltRequest(const server::BuiltRequest& built, const server::TextCodec& codec,
                       const server::RequestLimits& limits) {
  const std::vector<int32_t>& prompt = built.engine.prompt;
  FuzzCheck(!prompt.empty(), "an accepted request has an empty prompt");
  for (const int32_t id : prompt) {
    FuzzCheck(id >= 0 && id < codec.vocab_size(),
              "an accepted prompt has an id outside the vocabulary");
  }
  const int64_t max_tokens = built.engine.stop.max_tokens;
  FuzzCheck(max_tokens >= 1, "an accepted request has max_tokens < 1");
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
  FuzzCheck(total <= limits.context_length, "an accepted request does not fit the context");
  FuzzCheck(total <= limits.kv_capacity_tokens, "an accepted request does not fit the KV cache");
  const std::vector<std::string>& stops = built.stream.stop_strings;
  FuzzCheck(stops.size() <= static_cast<size_t>(server::kMaxStopStrings),
            "an accepted request has too many stop strings");
  for (const std::string& stop : stops) {
    FuzzCheck(!stop.empty() && stop.size() <= static_cast<size_t>(server::kMaxStopStringBytes) &&
                  base::FindInvalidUtf8(stop) == std::string::npos,
              "an accepted request has an empty, long or invalid UTF-8 stop string");
  }
}

namespace {

std::shared_ptr<const server::ChatTemplate> SourceTreeTemplate(const std::string& name) {
  const std::string path = std::string(KVSERVE_SOURCE_DIR) + "/tests/server/chat_templates/" + name;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::unique_ptr<server::ChatTemplate>> parsed =
      server::ChatTemplate::Parse(text.str());
  if (!in || !parsed.ok()) {
    std::fprintf(stderr, "fuzz: cannot load the chat template %s\n", path.c_str());
    std::abort();
  }
  return std::shared_ptr<const server::ChatTemplate>(*std::move(parsed));
}

}  // namespace

const server::ServingBackend& FuzzBackend() {
  static const server::ServingBackend* const backend = [] {
    auto* b = new server::ServingBackend;
    b->codec = std::make_unique<server::ByteLevelCodec>();
    // The name the seed corpus (tests/fuzz/make_seeds.py) asks for.
    b->model_info.name = "kvserve-demo";
    // Small enough that long prompts and max_tokens reach the limits (a rendered Llama 3.1 chat
    // starts with about 150 bytes).
    b->limits = server::RequestLimits{.context_length = 1024, .kv_capacity_tokens = 768};
    b->chat_template = SourceTreeTemplate("llama31.jinja");
    b->bos_token = "<|begin_of_text|>";
    b->eos_token = "<|eot_id|>";
    return b;
  }();
  return *backend;
}

}  // namespace kvserve::fuzz
