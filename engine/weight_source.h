// WeightSource: a model's tensors by their GGUF names ("blk.3.attn_q.weight") and ggml-order
// dims ({in, out}), read from a GGUF file or a Hugging Face folder, each translating to its own
// naming and layout. Tensors stay in the file's mapping; errors name the tensor as the file
// names it.
//
// Ownership: a source refers to its GgufFile / HfModel, which must outlive it. Thread-safety:
// const methods are safe from any thread.
#ifndef KVSERVE_ENGINE_WEIGHT_SOURCE_H_
#define KVSERVE_ENGINE_WEIGHT_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/hf_model.h"

namespace kvserve::engine {

// A tensor's raw rows in a mapping.
struct RawTensor {
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The whole tensor as f32 (dequantized if it is quantized), shape-checked.
  virtual absl::StatusOr<std::vector<float>> ReadF32(const std::string& name,
                                                     const std::vector<int64_t>& dims) const = 0;
  // The tensor's rows as stored, shape- and type-checked (an unsupported type is an error).
  virtual absl::StatusOr<RawTensor> Raw(const std::string& name,
                                        const std::vector<int64_t>& dims) const = 0;
  // How the source names a tensor in errors ("model.layers.0.mlp.up_proj.weight").
  virtual std::string DisplayName(const std::string& name) const { return name; }
};

std::unique_ptr<WeightSource> MakeGgufWeightSource(const GgufFile& file);
std::unique_ptr<WeightSource> MakeHfWeightSource(const HfModel& model);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_WEIGHT_SOURCE_H_
