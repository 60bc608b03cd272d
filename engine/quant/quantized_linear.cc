#include "engine/quant/quantized_linear.h"

#include <omp.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kvserve::engine::quant {

absl::StatusOr<std::unique_ptr<QuantizedLinear>> QuantizedLinear::Create(
    const std::vector<Part>& parts, int64_t k, QuantIsa isa, const float* bias) {
  if (parts.empty() || k <= 0) return absl::InvalidArgumentError("QuantizedLinear: no weights");
  std::unique_ptr<QuantizedLinear> linear(new QuantizedLinear());
  linear->k_ = k;
  linear->isa_ = isa;
  for (const Part& part : parts) {
    const FormatInfo* format = FindFormat(part.type);
    if (format == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kvserve has no kernels for ", std::string(GgmlTypeName(part.type)), " weights"));
    }
    absl::StatusOr<QuantMatrix> matrix = QuantMatrix::Create(*format, part.rows, part.n, k, isa);
    if (!matrix.ok()) return matrix.status();
    linear->first_output_.push_back(linear->n_);
    linear->n_ += part.n;
    linear->needs_[static_cast<int>(format->act)] = true;
    for (int64_t u = 0; u < matrix->units(); u += kUnitsPerRun) {
      linear->runs_.push_back({static_cast<int32_t>(linear->matrices_.size()),
                               static_cast<int32_t>(u),
                               static_cast<int32_t>(std::min(matrix->units(), u + kUnitsPerRun))});
    }
    linear->matrices_.push_back(*std::move(matrix));
  }
  if (bias != nullptr) linear->bias_.assign(bias, bias + linear->n_);
  return linear;
}

void QuantizedLinear::Forward(const float* x, int64_t m, float* y) {
  for (int kind = 0; kind < 3; ++kind) {
    if (needs_[kind]) PrepareQuantized(static_cast<ActKind>(kind), m, k_, &acts_[kind]);
  }
  const int64_t num_runs = static_cast<int64_t>(runs_.size());
#pragma omp parallel
  {
    for (int kind = 0; kind < 3; ++kind) {
      if (!needs_[kind]) continue;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < m; ++r) QuantizeRange(x, r, r + 1, isa_, &acts_[kind]);
    }
    // Dynamic, by runs of contiguous units: each thread still streams neighbouring weights, and
    // a thread the OS takes away for a moment does not hold the others at the barrier for its
    // whole static share. (Which thread computes a unit never changes its result.)
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_runs; ++i) {
      const Run& run = runs_[i];
      const QuantMatrix& w = matrices_[run.matrix];
      float* out = y + first_output_[run.matrix];
      w.Multiply(acts_[static_cast<int>(w.format().act)], run.unit_begin, run.unit_end, out, n_);
      if (!bias_.empty()) {
        const int64_t begin = run.unit_begin * kTileRows;
        const int64_t end = std::min<int64_t>(w.n(), run.unit_end * kTileRows);
        const float* b = bias_.data() + first_output_[run.matrix];
        for (int64_t r = 0; r < m; ++r) {
          for (int64_t j = begin; j < end; ++j) out[r * n_ + j] += b[j];
        }
      }
    }
  }
}

std::string QuantizedLinear::Describe() const {
  std::map<std::string, int> types;
  for (const QuantMatrix& w : matrices_) {
    types[absl::StrCat(std::string(GgmlTypeName(w.format().type)), " x ",
                       std::string(ActKindName(w.format().act)))]++;
  }
  std::vector<std::string> parts;
  for (const auto& [name, count] : types) parts.push_back(name);
  return absl::StrCat(absl::StrJoin(parts, " + "), " ", std::string(QuantIsaName(isa_)));
}

int64_t QuantizedLinear::weight_bytes() const {
  int64_t bytes = 0;
  for (const QuantMatrix& w : matrices_) bytes += w.bytes();
  return bytes;
}

}  // namespace kvserve::engine::quant
