// ModelSource: the one loader behind `--model` for every subcommand.
//
// `--model` is a GGUF file, a Hugging Face folder (config.json + safetensors + tokenizer.json),
// or `hf:OWNER/REPO[:FILE.gguf]` (downloaded into the cache first, see hf_hub.h). The loader
// opens the model once and returns its weights (LlamaModel), its tokenizer when it has a usable
// one, the EOS set (GGUF: the tokenizer's eos/eot/eom ids or tokenizer.ggml.eos_token_id;
// folder: generation_config.json / config.json plus the tokenizer's), BOS, a display name, and
// the raw source (the GgufFile metadata or the folder path) for later readers such as the chat
// template.
//
// Ownership: LoadedModel owns everything it returns; callers move the pieces out (the model into
// a ModelExecutor, the tokenizer into a TextCodec). Thread-safety: loading is single-threaded;
// the result is a plain value.
#ifndef KVSERVE_SERVER_MODELS_MODEL_SOURCE_H_
#define KVSERVE_SERVER_MODELS_MODEL_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/gguf.h"
#include "engine/hf_model.h"
#include "engine/llama_model.h"
#include "engine/primitives.h"
#include "engine/tokenizer.h"
#include "server/models/text_codec.h"

namespace kvserve::server {

struct ModelSourceOptions {
  engine::WeightDType weight_dtype = engine::WeightDType::kF32;
  // false: tokenizer, EOS/BOS and metadata only (`kvserve tokenize`); `model` stays null and a
  // folder needs no weights.
  bool load_weights = true;
  bool offline = false;  // --offline (HF_HUB_OFFLINE=1 works too): hf: sources use only the cache
};

struct LoadedModel {
  enum class Format { kGguf, kHfFolder };

  std::string spec;  // --model as given
  Format format = Format::kGguf;
  std::string path;  // the local GGUF file or folder (in the cache for hf: sources)
  std::string name;  // GGUF general.name, the folder name, or OWNER/REPO for hf: folders

  std::shared_ptr<const engine::GgufFile> gguf;  // kGguf: the file and all its metadata
  std::shared_ptr<const engine::HfModel> hf;     // kHfFolder with load_weights
  std::unique_ptr<engine::LlamaModel> model;     // null without load_weights

  std::unique_ptr<engine::Tokenizer> tokenizer;  // null when the model has no usable one
  absl::Status tokenizer_status;                 // why `tokenizer` is null
  absl::flat_hash_set<int32_t> eos_ids;
  int32_t bos_id = -1;
  // The BOS / EOS texts transformers passes to chat templates as bos_token / eos_token: the
  // BOS token's text, and the EOS token named by the GGUF metadata (tokenizer.ggml.eos_token_id)
  // or by tokenizer_config.json's eos_token. Empty when unknown.
  std::string bos_token;
  std::string eos_token;

  // The chat template's Jinja source: GGUF `tokenizer.chat_template`, or a folder's
  // tokenizer_config.json `chat_template` (a string, or the entry named "default" of a list of
  // {name, template}), else its chat_template.jinja. nullopt when the model has none.
  std::optional<std::string> chat_template_source;

  // Moves the tokenizer into a TextCodec whose EOS set is `eos_ids`; without a tokenizer, a
  // token-ids-only codec of the model's vocabulary size (`vocab_size`).
  std::unique_ptr<TextCodec> TakeCodec(int32_t vocab_size);
};

// Loads `spec`. Errors: InvalidArgument for an empty spec or bad hf: reference, NotFound for a
// missing path, the hf_hub.h errors for downloads, and the model/tokenizer loaders' named errors.
// A model without a usable tokenizer still loads (tokenizer_status says why).
absl::StatusOr<LoadedModel> LoadModelSource(const std::string& spec,
                                            const ModelSourceOptions& options);

// The chat_template of a parsed tokenizer_config.json: a string, or the template named "default"
// in a list of {name, template}. nullopt when absent; InvalidArgument when malformed.
absl::StatusOr<std::optional<std::string>> ChatTemplateFromTokenizerConfig(
    const base::JsonValue& config);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_MODELS_MODEL_SOURCE_H_
