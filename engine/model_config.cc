#include "engine/model_config.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvserve::engine {
namespace {

absl::StatusOr<int64_t> PositiveInt(const GgufFile& file, const std::string& key) {
  absl::StatusOr<int64_t> v = file.GetInt(key);
  if (!v.ok()) return v.status();
  if (*v <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat("metadata key '", key, "' is ", *v, ", expected a positive integer"));
  return *v;
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file) {
  ModelConfig c;
  absl::StatusOr<std::string> arch = file.GetString("general.architecture");
  if (!arch.ok()) return arch.status();
  c.architecture = *arch;
  if (c.architecture == "llama") {
    c.rope_style = RopeStyle::kAdjacentPairs;
  } else if (c.architecture == "qwen2") {
    c.rope_style = RopeStyle::kHalves;
    c.qkv_bias = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported architecture '", c.architecture,
                     "' (general.architecture); kvserve supports llama (incl. Mistral) and qwen2"));
  }
  absl::StatusOr<std::string> name = file.GetString("general.name");
  c.name = name.ok() ? *name : std::filesystem::path(file.path()).stem().string();

  const std::string p = c.architecture + ".";
#define KVSERVE_ASSIGN_INT(field, key)                      \
  do {                                                      \
    absl::StatusOr<int64_t> v = PositiveInt(file, p + key); \
    if (!v.ok()) return v.status();                         \
    c.field = *v;                                           \
  } while (0)
  KVSERVE_ASSIGN_INT(hidden_size, "embedding_length");
  KVSERVE_ASSIGN_INT(num_layers, "block_count");
  KVSERVE_ASSIGN_INT(intermediate_size, "feed_forward_length");
  KVSERVE_ASSIGN_INT(num_heads, "attention.head_count");
  KVSERVE_ASSIGN_INT(context_length, "context_length");
#undef KVSERVE_ASSIGN_INT

  if (file.FindMetadata(p + "attention.head_count_kv") != nullptr) {
    absl::StatusOr<int64_t> v = PositiveInt(file, p + "attention.head_count_kv");
    if (!v.ok()) return v.status();
    c.num_kv_heads = *v;
  } else {
    c.num_kv_heads = c.num_heads;
  }
  if (c.hidden_size % c.num_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%sattention.head_count (%d) does not divide %sembedding_length (%d)", p,
                        c.num_heads, p, c.hidden_size));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%sattention.head_count_kv (%d) does not divide %sattention.head_count (%d)", p,
        c.num_kv_heads, p, c.num_heads));
  }
  c.head_dim = c.hidden_size / c.num_heads;
  if (file.FindMetadata(p + "attention.key_length") != nullptr) {
    absl::StatusOr<int64_t> v = PositiveInt(file, p + "attention.key_length");
    if (!v.ok()) return v.status();
    c.head_dim = *v;
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("head dimension %d is odd; rotary embedding needs it even", c.head_dim));
  }
  if (file.FindMetadata(p + "rope.dimension_count") != nullptr) {
    absl::StatusOr<int64_t> v = PositiveInt(file, p + "rope.dimension_count");
    if (!v.ok()) return v.status();
    if (*v != c.head_dim) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%srope.dimension_count is %d but the head dimension is %d; partial rotary "
          "embedding is not supported",
          p, *v, c.head_dim));
    }
  }
  absl::StatusOr<double> eps = file.GetFloat(p + "attention.layer_norm_rms_epsilon");
  if (!eps.ok()) return eps.status();
  if (!(*eps > 0 && *eps < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, "attention.layer_norm_rms_epsilon is ", *eps, ", expected (0, 1)"));
  }
  c.rms_norm_eps = static_cast<float>(*eps);
  if (file.FindMetadata(p + "rope.freq_base") != nullptr) {
    absl::StatusOr<double> base = file.GetFloat(p + "rope.freq_base");
    if (!base.ok()) return base.status();
    if (!(*base > 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(p, "rope.freq_base is ", *base, ", expected a value above 1"));
    }
    c.rope_base = static_cast<float>(*base);
  }
  if (const GgufValue* scaling = file.FindMetadata(p + "rope.scaling.type"); scaling != nullptr) {
    absl::StatusOr<std::string> type = file.GetString(p + "rope.scaling.type");
    if (!type.ok()) return type.status();
    if (*type != "none") {
      return absl::InvalidArgumentError(
          absl::StrCat(p, "rope.scaling.type '", *type, "' is not supported"));
    }
  }

  absl::StatusOr<const GgufTensorInfo*> embd = file.GetTensor("token_embd.weight");
  if (!embd.ok()) return embd.status();
  if ((*embd)->dims.size() != 2 || (*embd)->dims[0] != c.hidden_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tensor 'token_embd.weight' has %d dims with first dim %d; expected [%d, vocab]",
        (*embd)->dims.size(), (*embd)->dims.empty() ? 0 : (*embd)->dims[0], c.hidden_size));
  }
  c.vocab_size = (*embd)->dims[1];
  c.tied_embeddings = file.FindTensor("output.weight") == nullptr;
  return c;
}

}  // namespace kvserve::engine
