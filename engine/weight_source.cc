#include "engine/weight_source.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kvserve::engine {
namespace {

absl::Status UnsupportedType(absl::string_view name, GgmlType type) {
  return absl::InvalidArgumentError(absl::StrCat(
      "tensor '", name, "' has type ", std::string(GgmlTypeName(type)),
      ", which kvserve does not support (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, "
      "Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)"));
}

absl::StatusOr<std::vector<float>> ToF32(absl::string_view name, RawTensor raw, int64_t n) {
  std::vector<float> out(n);
  absl::Status s = ConvertToF32(raw.type, raw.data, out.data(), n);
  if (!s.ok())
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", s.message()));
  return out;
}

int64_t NumElements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

class GgufWeightSource : public WeightSource {
 public:
  explicit GgufWeightSource(const GgufFile& file) : file_(file) {}

  absl::StatusOr<RawTensor> Raw(const std::string& name,
                                const std::vector<int64_t>& dims) const override {
    absl::StatusOr<const GgufTensorInfo*> t = file_.GetTensor(name, dims);
    if (!t.ok()) return t.status();
    if (!IsSupportedWeightType((*t)->type)) return UnsupportedType(name, (*t)->type);
    return RawTensor{(*t)->type, (*t)->data};
  }
  absl::StatusOr<std::vector<float>> ReadF32(const std::string& name,
                                             const std::vector<int64_t>& dims) const override {
    absl::StatusOr<RawTensor> raw = Raw(name, dims);
    if (!raw.ok()) return raw.status();
    return ToF32(name, *raw, NumElements(dims));
  }

 private:
  const GgufFile& file_;
};

// Hugging Face names and [out, in] shapes (the reverse of ggml's dims; same bytes).
class HfWeightSource : public WeightSource {
 public:
  explicit HfWeightSource(const HfModel& model) : model_(model) {}

  static std::string HfName(const std::string& gguf_name) {
    static const std::pair<absl::string_view, absl::string_view> kGlobal[] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"},
    };
    for (const auto& [g, h] : kGlobal) {
      if (gguf_name == g) return std::string(h);
    }
    static const std::pair<absl::string_view, absl::string_view> kLayer[] = {
        {"attn_norm.", "input_layernorm."},    {"attn_q.", "self_attn.q_proj."},
        {"attn_k.", "self_attn.k_proj."},      {"attn_v.", "self_attn.v_proj."},
        {"attn_output.", "self_attn.o_proj."}, {"ffn_norm.", "post_attention_layernorm."},
        {"ffn_gate.", "mlp.gate_proj."},       {"ffn_up.", "mlp.up_proj."},
        {"ffn_down.", "mlp.down_proj."},
    };
    // "blk.N.ROLE.weight" -> "model.layers.N.HF_ROLE.weight"
    if (gguf_name.rfind("blk.", 0) == 0) {
      const size_t dot = gguf_name.find('.', 4);
      if (dot != std::string::npos) {
        const std::string layer = gguf_name.substr(4, dot - 4);
        const std::string rest = gguf_name.substr(dot + 1);
        for (const auto& [g, h] : kLayer) {
          if (absl::StartsWith(rest, g)) {
            return absl::StrCat("model.layers.", layer, ".", h, rest.substr(g.size()));
          }
        }
      }
    }
    return gguf_name;
  }

  absl::StatusOr<RawTensor> Raw(const std::string& gguf_name,
                                const std::vector<int64_t>& dims) const override {
    const std::string name = HfName(gguf_name);
    const SafetensorsTensor* t = model_.Find(name);
    if (t == nullptr) return absl::NotFoundError(absl::StrCat("missing tensor '", name, "'"));
    const std::vector<int64_t> shape(dims.rbegin(), dims.rend());
    if (t->shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape [",
                                                     absl::StrJoin(t->shape, ", "), "], expected [",
                                                     absl::StrJoin(shape, ", "), "]"));
    }
    absl::StatusOr<GgmlType> type = SafetensorsDTypeToGgml(t->dtype);
    if (!type.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "': ", type.status().message()));
    }
    return RawTensor{*type, t->data};
  }
  absl::StatusOr<std::vector<float>> ReadF32(const std::string& gguf_name,
                                             const std::vector<int64_t>& dims) const override {
    absl::StatusOr<RawTensor> raw = Raw(gguf_name, dims);
    if (!raw.ok()) return raw.status();
    return ToF32(HfName(gguf_name), *raw, NumElements(dims));
  }
  std::string DisplayName(const std::string& gguf_name) const override { return HfName(gguf_name); }

 private:
  const HfModel& model_;
};

}  // namespace

std::unique_ptr<WeightSource> MakeGgufWeightSource(const GgufFile& file) {
  return std::make_unique<GgufWeightSource>(file);
}

std::unique_ptr<WeightSource> MakeHfWeightSource(const HfModel& model) {
  return std::make_unique<HfWeightSource>(model);
}

}  // namespace kvserve::engine
