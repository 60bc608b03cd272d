#include "engine/hf_model.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvserve::engine {

using base::JsonValue;
using base::ParseJson;

namespace {

namespace fs = std::filesystem;

absl::StatusOr<JsonValue> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path.string(), "'"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<JsonValue> v = ParseJson(text.str());
  if (!v.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", v.status().message()));
  }
  return v;
}

// A positive integer member of config.json.
absl::StatusOr<int64_t> PositiveInt(const JsonValue& config, absl::string_view key) {
  const JsonValue* v = config.Find(key);
  if (v == nullptr)
    return absl::NotFoundError(absl::StrCat("config.json: missing key '", key, "'"));
  if (!v->is_integer || v->integer <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: '", key, "' must be a positive integer"));
  }
  return v->integer;
}

absl::StatusOr<double> Number(const JsonValue& config, absl::string_view key, double fallback) {
  const JsonValue* v = config.Find(key);
  if (v == nullptr || v->type == JsonValue::Type::kNull) return fallback;
  if (v->type != JsonValue::Type::kNumber) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: '", key, "' must be a number"));
  }
  return v->number;
}

// eos_token_id: an int or a list of ints; absent is fine.
absl::Status AddEosIds(const JsonValue& json, absl::string_view file,
                       absl::flat_hash_set<int32_t>* ids) {
  const JsonValue* v = json.Find("eos_token_id");
  if (v == nullptr || v->type == JsonValue::Type::kNull) return absl::OkStatus();
  std::vector<const JsonValue*> items;
  if (v->type == JsonValue::Type::kArray) {
    for (const JsonValue& item : v->array) items.push_back(&item);
  } else {
    items.push_back(v);
  }
  for (const JsonValue* item : items) {
    if (!item->is_integer || item->integer < 0 || item->integer > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": eos_token_id must be a token id or a list of token ids"));
    }
    ids->insert(static_cast<int32_t>(item->integer));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfigFromHfConfig(const JsonValue& config, std::string name) {
  if (config.type != JsonValue::Type::kObject) {
    return absl::InvalidArgumentError("config.json: expected a JSON object");
  }
  ModelConfig c;
  c.name = std::move(name);
  const JsonValue* archs = config.Find("architectures");
  if (archs == nullptr || archs->type != JsonValue::Type::kArray || archs->array.empty() ||
      archs->array[0].type != JsonValue::Type::kString) {
    return absl::InvalidArgumentError("config.json: missing 'architectures' list");
  }
  const std::string& arch = archs->array[0].string;
  if (arch == "LlamaForCausalLM" || arch == "MistralForCausalLM") {
    c.architecture = "llama";
  } else if (arch == "Qwen2ForCausalLM") {
    c.architecture = "qwen2";
    c.qkv_bias = true;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: unsupported architecture '", arch,
        "'; kvserve supports LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM"));
  }
  // HF checkpoints keep Q/K rows in rotate-halves order whatever the architecture.
  c.rope_style = RopeStyle::kHalves;
#define KVSERVE_ASSIGN_INT(field, key)                    \
  do {                                                    \
    absl::StatusOr<int64_t> v = PositiveInt(config, key); \
    if (!v.ok()) return v.status();                       \
    c.field = *v;                                         \
  } while (0)
  KVSERVE_ASSIGN_INT(vocab_size, "vocab_size");
  KVSERVE_ASSIGN_INT(hidden_size, "hidden_size");
  KVSERVE_ASSIGN_INT(num_layers, "num_hidden_layers");
  KVSERVE_ASSIGN_INT(num_heads, "num_attention_heads");
  KVSERVE_ASSIGN_INT(intermediate_size, "intermediate_size");
  KVSERVE_ASSIGN_INT(context_length, "max_position_embeddings");
#undef KVSERVE_ASSIGN_INT
  c.num_kv_heads = c.num_heads;
  if (const JsonValue* v = config.Find("num_key_value_heads");
      v != nullptr && v->type != JsonValue::Type::kNull) {
    absl::StatusOr<int64_t> kv = PositiveInt(config, "num_key_value_heads");
    if (!kv.ok()) return kv.status();
    c.num_kv_heads = *kv;
  }
  if (c.hidden_size % c.num_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config.json: num_attention_heads (%d) does not divide hidden_size (%d)",
                        c.num_heads, c.hidden_size));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config.json: num_key_value_heads (%d) does not divide num_attention_heads (%d)",
        c.num_kv_heads, c.num_heads));
  }
  c.head_dim = c.hidden_size / c.num_heads;
  if (const JsonValue* v = config.Find("head_dim");
      v != nullptr && v->type != JsonValue::Type::kNull) {
    absl::StatusOr<int64_t> hd = PositiveInt(config, "head_dim");
    if (!hd.ok()) return hd.status();
    c.head_dim = *hd;
  }
  if (c.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config.json: head dimension %d is above %d, the largest kvserve supports", c.head_dim,
        kMaxHeadDim));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config.json: head dimension %d is odd; rotary embedding needs it even", c.head_dim));
  }
  absl::StatusOr<double> eps = Number(config, "rms_norm_eps", 1e-6);
  if (!eps.ok()) return eps.status();
  if (!(*eps > 0 && *eps < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: rms_norm_eps is ", *eps, ", expected (0, 1)"));
  }
  c.rms_norm_eps = static_cast<float>(*eps);
  absl::StatusOr<double> theta = Number(config, "rope_theta", 10000.0);
  if (!theta.ok()) return theta.status();
  if (!(*theta > 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: rope_theta is ", *theta, ", expected a value above 1"));
  }
  c.rope_base = static_cast<float>(*theta);
  // Mistral's sliding_window (null or absent: none; Qwen2 declares one with use_sliding_window
  // false, which is off): recorded, not applied, as for GGUF files (ModelConfig).
  if (const JsonValue* v = config.Find("sliding_window");
      v != nullptr && v->type != JsonValue::Type::kNull) {
    const JsonValue* use = config.Find("use_sliding_window");
    const bool off = use != nullptr && use->type == JsonValue::Type::kBool && !use->boolean;
    absl::StatusOr<int64_t> window = PositiveInt(config, "sliding_window");
    if (!window.ok()) return window.status();
    if (!off) c.declared_sliding_window = *window;
  }
  if (const JsonValue* v = config.Find("rope_scaling");
      v != nullptr && v->type != JsonValue::Type::kNull) {
    const JsonValue* type = v->Find("rope_type");
    if (type == nullptr) type = v->Find("type");
    const std::string kind =
        type != nullptr && type->type == JsonValue::Type::kString ? type->string : "?";
    // A required positive number of rope_scaling.
    const auto param = [&](absl::string_view key) -> absl::StatusOr<double> {
      const JsonValue* p = v->Find(key);
      if (p == nullptr || p->type != JsonValue::Type::kNumber || !(p->number > 0)) {
        return absl::InvalidArgumentError(absl::StrCat("config.json: rope_scaling type '", kind,
                                                       "' needs a positive number '", key, "'"));
      }
      return p->number;
    };
    if (kind == "llama3") {
      absl::StatusOr<double> factor = param("factor");
      if (!factor.ok()) return factor.status();
      absl::StatusOr<double> low = param("low_freq_factor");
      if (!low.ok()) return low.status();
      absl::StatusOr<double> high = param("high_freq_factor");
      if (!high.ok()) return high.status();
      absl::StatusOr<double> original = param("original_max_position_embeddings");
      if (!original.ok()) return original.status();
      absl::StatusOr<std::vector<float>> divisors =
          Llama3RopeDivisors(c.head_dim, *theta, *factor, *low, *high, *original);
      if (!divisors.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("config.json: ", divisors.status().message()));
      }
      c.rope_freq_divisors = std::move(*divisors);
      c.rope_scaling = "llama3";
    } else if (kind == "linear") {
      absl::StatusOr<double> factor = param("factor");
      if (!factor.ok()) return factor.status();
      c.rope_freq_divisors.assign(c.head_dim / 2, static_cast<float>(*factor));
      c.rope_scaling = "linear";
    } else if (kind != "default") {
      return absl::InvalidArgumentError(
          absl::StrCat("config.json: rope_scaling type '", kind,
                       "' is not supported (default, linear and llama3 are)"));
    }
  }
  if (const JsonValue* v = config.Find("tie_word_embeddings"); v != nullptr) {
    if (v->type != JsonValue::Type::kBool) {
      return absl::InvalidArgumentError("config.json: 'tie_word_embeddings' must be a boolean");
    }
    c.tied_embeddings = v->boolean;
  }
  return c;
}

absl::StatusOr<std::unique_ptr<HfModel>> HfModel::Open(const std::string& dir) {
  const fs::path root(dir);
  std::unique_ptr<HfModel> m(new HfModel());
  m->dir_ = dir;
  absl::StatusOr<JsonValue> config = ReadJsonFile(root / "config.json");
  if (!config.ok()) return config.status();
  fs::path name_path = root;
  if (!name_path.has_filename()) name_path = name_path.parent_path();
  absl::StatusOr<ModelConfig> c = ModelConfigFromHfConfig(*config, name_path.filename().string());
  if (!c.ok()) return c.status();
  m->config_ = std::move(*c);

  // EOS: generation_config.json wins (it lists Llama 3's <|eot_id|>), else config.json.
  const fs::path gen_path = root / "generation_config.json";
  if (fs::exists(gen_path)) {
    absl::StatusOr<JsonValue> gen = ReadJsonFile(gen_path);
    if (!gen.ok()) return gen.status();
    absl::Status s = AddEosIds(*gen, "generation_config.json", &m->eos_ids_);
    if (!s.ok()) return s;
  }
  if (m->eos_ids_.empty()) {
    absl::Status s = AddEosIds(*config, "config.json", &m->eos_ids_);
    if (!s.ok()) return s;
  }

  // Shards: the index's weight_map names them; otherwise one model.safetensors.
  std::vector<std::string> shard_names;
  const fs::path index_path = root / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    absl::StatusOr<JsonValue> index = ReadJsonFile(index_path);
    if (!index.ok()) return index.status();
    const JsonValue* map = index->Find("weight_map");
    if (map == nullptr || map->type != JsonValue::Type::kObject) {
      return absl::InvalidArgumentError(
          "model.safetensors.index.json: missing object 'weight_map'");
    }
    for (const auto& [tensor, file] : map->object) {
      if (file.type != JsonValue::Type::kString || file.string.empty() ||
          file.string.find('/') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model.safetensors.index.json: weight_map entry '", tensor, "' is not a file name"));
      }
      if (std::find(shard_names.begin(), shard_names.end(), file.string) == shard_names.end()) {
        shard_names.push_back(file.string);
      }
    }
  } else {
    shard_names.push_back("model.safetensors");
  }
  for (const std::string& shard_name : shard_names) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> shard =
        SafetensorsFile::Open((root / shard_name).string());
    if (!shard.ok()) return shard.status();
    for (const SafetensorsTensor& t : (*shard)->tensors()) {
      if (!m->tensors_.emplace(t.name, &t).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", t.name, "' appears in more than one shard"));
      }
    }
    m->shards_.push_back(std::move(*shard));
  }
  return m;
}

const SafetensorsTensor* HfModel::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

}  // namespace kvserve::engine
