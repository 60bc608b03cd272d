#include "engine/model_config.h"

#include <cmath>
#include <cstring>
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

absl::StatusOr<std::vector<float>> Llama3RopeDivisors(int64_t head_dim, double base, double factor,
                                                      double low_freq_factor,
                                                      double high_freq_factor,
                                                      double original_context) {
  if (!(factor > 0) || !(original_context > 0) || !(low_freq_factor > 0) ||
      !(high_freq_factor > low_freq_factor)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "llama3 rope_scaling needs factor > 0, original_max_position_embeddings > 0 and "
        "high_freq_factor > low_freq_factor > 0; got factor %g, original %g, low %g, high %g",
        factor, original_context, low_freq_factor, high_freq_factor));
  }
  const double low_freq_wavelen = original_context / low_freq_factor;
  const double high_freq_wavelen = original_context / high_freq_factor;
  std::vector<float> divisors(head_dim / 2);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(base, -2.0 * static_cast<double>(i) / head_dim);
    const double wavelen = 2 * M_PI / freq;
    double divisor;
    if (wavelen < high_freq_wavelen) {
      divisor = 1;
    } else if (wavelen > low_freq_wavelen) {
      divisor = factor;
    } else {
      const double smooth =
          (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      divisor = 1 / ((1 - smooth) / factor + smooth);
    }
    divisors[i] = static_cast<float>(divisor);
  }
  return divisors;
}

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
  } else if (c.architecture == "qwen3") {
    // Qwen2 without the Q/K/V biases, plus an RMSNorm over each head of Q and K before RoPE
    // (attn_q_norm / attn_k_norm); the head size comes from attention.key_length.
    c.rope_style = RopeStyle::kHalves;
    c.qk_norm = true;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported architecture '", c.architecture,
        "' (general.architecture); kvserve supports llama (incl. Mistral), qwen2 and qwen3"));
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
  if (c.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "head dimension %d is above %d, the largest kvserve supports", c.head_dim, kMaxHeadDim));
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
  // llama.cpp's converter stores Llama 3's rope_scaling as the divisors themselves.
  if (const GgufTensorInfo* freqs = file.FindTensor("rope_freqs.weight"); freqs != nullptr) {
    if (freqs->type != GgmlType::kF32 || freqs->dims.size() != 1 ||
        freqs->dims[0] != c.head_dim / 2) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "tensor 'rope_freqs.weight' must be F32 with %d values (head_dim / 2)", c.head_dim / 2));
    }
    c.rope_freq_divisors.resize(c.head_dim / 2);
    std::memcpy(c.rope_freq_divisors.data(), freqs->data, c.rope_freq_divisors.size() * 4);
    for (float d : c.rope_freq_divisors) {
      if (!(d > 0) || !std::isfinite(d)) {
        return absl::InvalidArgumentError(
            "tensor 'rope_freqs.weight' holds a value that is not a positive number");
      }
    }
    c.rope_scaling = "rope_freqs";
  }
  if (const GgufValue* scaling = file.FindMetadata(p + "rope.scaling.type"); scaling != nullptr) {
    absl::StatusOr<std::string> type = file.GetString(p + "rope.scaling.type");
    if (!type.ok()) return type.status();
    if (*type == "linear") {
      absl::StatusOr<double> factor = file.GetFloat(p + "rope.scaling.factor");
      if (!factor.ok()) return factor.status();
      if (!(*factor > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat(p, "rope.scaling.factor is ", *factor, ", expected a positive value"));
      }
      if (c.rope_freq_divisors.empty()) c.rope_freq_divisors.assign(c.head_dim / 2, 1.0f);
      for (float& d : c.rope_freq_divisors) d *= static_cast<float>(*factor);
      c.rope_scaling = "linear";
    } else if (*type == "llama3") {
      if (c.rope_freq_divisors.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            p, "rope.scaling.type is 'llama3' but the file has no 'rope_freqs.weight' tensor"));
      }
    } else if (*type != "none") {
      return absl::InvalidArgumentError(absl::StrCat(
          p, "rope.scaling.type '", *type, "' is not supported (none, linear, llama3 are)"));
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
  if (file.FindMetadata(p + "attention.sliding_window") != nullptr) {
    absl::StatusOr<int64_t> window = PositiveInt(file, p + "attention.sliding_window");
    if (!window.ok()) return window.status();
    c.declared_sliding_window = *window;
  }
  return c;
}

std::vector<std::string> ModelConfigNotes(const ModelConfig& c) {
  std::vector<std::string> notes;
  if (c.declared_sliding_window > 0) {
    notes.push_back(absl::StrFormat(
        "the model declares a sliding attention window of %d tokens; not applied: every layer "
        "attends to the whole context, as llama.cpp does for the %s architecture",
        c.declared_sliding_window, c.architecture));
  }
  return notes;
}

}  // namespace kvserve::engine
