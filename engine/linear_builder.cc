#include "engine/linear_builder.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/quant/float_linear.h"
#include "engine/quant/formats.h"
#include "engine/quant/quantize.h"
#include "engine/quant/quantized_linear.h"

namespace kvserve::engine {
namespace {

bool IsQuantized(GgmlType type) { return quant::FindFormat(type) != nullptr; }

// The storage of kvserve's float kernels for `dtype`, or nullopt where oneDNN multiplies.
std::optional<quant::FloatStorage> OwnFloatStorage(WeightDType dtype) {
  if (dtype == WeightDType::kF32) return quant::FloatStorage::kF32;
  if (dtype == WeightDType::kF16) return quant::FloatStorage::kF16;
  return std::nullopt;
}

GgmlType QuantTarget(WeightDType dtype) {
  return dtype == WeightDType::kQ4_K ? GgmlType::kQ4_K : GgmlType::kQ8_0;
}

}  // namespace

LinearBuilder::LinearBuilder(const WeightSource& source, WeightDType dtype, quant::QuantIsa isa)
    : source_(source), dtype_(dtype), isa_(isa) {}

absl::StatusOr<std::unique_ptr<Linear>> LinearBuilder::Build(const std::vector<Tensor>& tensors,
                                                             const std::vector<float>& bias) {
  std::vector<RawTensor> raws;
  bool all_quantized = true;
  for (const Tensor& t : tensors) {
    absl::StatusOr<RawTensor> raw = source_.Raw(t.name, {t.k, t.n});
    if (!raw.ok()) return raw.status();
    all_quantized = all_quantized && IsQuantized(raw->type);
    raws.push_back(*raw);
  }
  switch (dtype_) {
    case WeightDType::kQ8_0:
    case WeightDType::kQ4_K:
      return BuildQuantized(tensors, raws, bias);
    case WeightDType::kAuto: {
      if (all_quantized) return BuildQuantized(tensors, raws, bias);
      bool all_f16 = true;
      for (const RawTensor& raw : raws) all_f16 = all_f16 && raw.type == GgmlType::kF16;
      return BuildFloat(tensors, raws, bias,
                        all_f16 ? WeightDType::kF16 : DefaultFloatWeightDType());
    }
    default:
      return BuildFloat(tensors, raws, bias, dtype_);
  }
}

absl::StatusOr<std::unique_ptr<Linear>> LinearBuilder::BuildQuantized(
    const std::vector<Tensor>& tensors, const std::vector<RawTensor>& raws,
    const std::vector<float>& bias) {
  std::vector<quant::QuantizedLinear::Part> parts;
  std::vector<std::vector<uint8_t>> quantized;  // float tensors quantized here
  quantized.reserve(tensors.size());
  std::vector<std::string> outcomes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    GgmlType type = raws[i].type;
    const uint8_t* rows = raws[i].data;
    std::string outcome;
    if (!IsQuantized(type)) {
      const GgmlType target = quant::QuantTypeForRows(QuantTarget(dtype_), t.k);
      absl::StatusOr<std::vector<float>> f32 = source_.ReadF32(t.name, {t.k, t.n});
      if (!f32.ok()) return f32.status();
      absl::StatusOr<std::vector<uint8_t>> q = quant::QuantizeRows(target, f32->data(), t.n, t.k);
      if (!q.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", source_.DisplayName(t.name), "': ", q.status().message()));
      }
      outcome = absl::StrCat(std::string(GgmlTypeName(type)), ": quantized at load to ",
                             std::string(GgmlTypeName(target)));
      type = target;
      quantized.push_back(*std::move(q));
      rows = quantized.back().data();
    } else {
      outcome = absl::StrCat(std::string(GgmlTypeName(type)), ": kept quantized");
    }
    const quant::FormatInfo& f = *quant::FindFormat(type);
    absl::StrAppend(&outcome, " (", std::string(GgmlTypeName(type)), " x ",
                    std::string(quant::ActKindName(f.act)), ", ",
                    std::string(quant::QuantIsaName(isa_)), " kernels)");
    outcomes.push_back(std::move(outcome));
    parts.push_back({type, rows, t.n});
  }
  absl::StatusOr<std::unique_ptr<quant::QuantizedLinear>> linear = quant::QuantizedLinear::Create(
      parts, tensors.front().k, isa_, bias.empty() ? nullptr : bias.data());
  if (!linear.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", source_.DisplayName(tensors.front().name), "': ", linear.status().message()));
  }
  for (const std::string& o : outcomes) ++outcomes_[o];
  return std::unique_ptr<Linear>(*std::move(linear));
}

absl::StatusOr<std::unique_ptr<Linear>> LinearBuilder::BuildFloat(
    const std::vector<Tensor>& tensors, const std::vector<RawTensor>& raws,
    const std::vector<float>& bias, WeightDType dtype) {
  const std::optional<quant::FloatStorage> storage = OwnFloatStorage(dtype);
  const std::string engine_name =
      storage
          ? absl::StrCat(" (kvserve float kernels, ", std::string(quant::QuantIsaName(isa_)), ")")
          : std::string(" (oneDNN)");
  std::vector<float> stacked;
  int64_t n = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    absl::StatusOr<std::vector<float>> f32 =
        source_.ReadF32(tensors[i].name, {tensors[i].k, tensors[i].n});
    if (!f32.ok()) return f32.status();
    stacked.insert(stacked.end(), f32->begin(), f32->end());
    n += tensors[i].n;
    ++outcomes_[absl::StrCat(std::string(GgmlTypeName(raws[i].type)),
                             IsQuantized(raws[i].type) ? ": dequantized to " : ": as ",
                             std::string(WeightDTypeName(dtype)), engine_name)];
  }
  const float* b = bias.empty() ? nullptr : bias.data();
  if (storage) {
    absl::StatusOr<std::unique_ptr<quant::FloatLinear>> linear =
        quant::FloatLinear::Create(stacked.data(), n, tensors.front().k, *storage, isa_, b);
    if (!linear.ok()) return linear.status();
    return std::unique_ptr<Linear>(*std::move(linear));
  }
  absl::StatusOr<std::unique_ptr<OneDnnLinear>> linear =
      OneDnnLinear::Create(stacked.data(), n, tensors.front().k, dtype, b);
  if (!linear.ok()) return linear.status();
  return std::unique_ptr<Linear>(*std::move(linear));
}

std::vector<std::string> LinearBuilder::Summary() const {
  std::vector<std::string> lines;
  for (const auto& [outcome, count] : outcomes_) {
    const size_t colon = outcome.find(':');
    lines.push_back(absl::StrCat(outcome.substr(0, colon), ": ", count,
                                 count == 1 ? " tensor" : " tensors", outcome.substr(colon + 1)));
  }
  return lines;
}

}  // namespace kvserve::engine
