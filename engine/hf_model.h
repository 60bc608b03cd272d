// HfModel: a Hugging Face model folder — config.json, weights in model.safetensors or in the
// shards listed by model.safetensors.index.json (all memory-mapped), and the end-of-sequence ids
// of generation_config.json / config.json.
//
// Supported architectures: LlamaForCausalLM and MistralForCausalLM (ModelConfig architecture
// "llama") and Qwen2ForCausalLM ("qwen2", with Q/K/V biases). Hugging Face stores the rows of
// Q and K in the order that rotates the two halves of each head, so every HF checkpoint uses
// RopeStyle::kHalves (GGUF `llama` files are permuted for adjacent pairs instead).
//
// Ownership: owns the mapped shards; tensor pointers live as long as the HfModel.
// Thread-safety: immutable after Open(); const methods may run concurrently.
#ifndef KVSERVE_ENGINE_HF_MODEL_H_
#define KVSERVE_ENGINE_HF_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/json.h"
#include "engine/model_config.h"
#include "engine/safetensors.h"

namespace kvserve::engine {

// Reads a config.json (already parsed). `name` fills ModelConfig::name. Errors name the key:
// "config.json: missing key 'hidden_size'", "unsupported architecture 'GPT2LMHeadModel'".
// vocab_size is taken from the config; tied_embeddings from tie_word_embeddings (default false).
absl::StatusOr<ModelConfig> ModelConfigFromHfConfig(const base::JsonValue& config,
                                                    std::string name);

class HfModel {
 public:
  // Opens the folder `dir`. NotFound names the missing file (config.json, model.safetensors or
  // a shard); malformed files give the errors of ParseJson / SafetensorsFile / the config.
  static absl::StatusOr<std::unique_ptr<HfModel>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  // eos_token_id of generation_config.json, else of config.json (an int or a list); may be empty.
  const absl::flat_hash_set<int32_t>& eos_ids() const { return eos_ids_; }

  // nullptr when no shard holds `name`.
  const SafetensorsTensor* Find(absl::string_view name) const;

 private:
  HfModel() = default;

  std::string dir_;
  ModelConfig config_;
  absl::flat_hash_set<int32_t> eos_ids_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  absl::flat_hash_map<std::string, const SafetensorsTensor*> tensors_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_HF_MODEL_H_
