// Writes small random-weight Llama-family GGUF files (f32 tensors) for C++ tests. Python's
// scripts/make_model.py is the full-featured writer (all tensor types, tokenizer copy); this one
// keeps C++ unit tests free of subprocesses.
#ifndef KVSERVE_TESTS_ENGINE_SYNTHETIC_MODEL_H_
#define KVSERVE_TESTS_ENGINE_SYNTHETIC_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/dtype.h"

namespace kvserve::engine::testing {

struct SyntheticSpec {
  std::string architecture = "llama";  // or "qwen2" (adds Q/K/V biases)
  int64_t hidden = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t ffn = 96;
  int64_t vocab = 256;
  int64_t context = 1024;
  bool tied = false;
  uint32_t seed = 1;
  // Type of the 2-D weights (F32, or a quantized type: random valid blocks of it); 1-D tensors
  // stay F32. Quantized types need hidden and ffn to be multiples of the block.
  GgmlType weight_type = GgmlType::kF32;
  // Lets tests corrupt one tensor: called with (name, dims) and may change dims or skip it by
  // returning false.
  std::function<bool(const std::string&, std::vector<int64_t>&)> edit_tensor;
};

// Returns the path of a new temporary GGUF file.
std::string WriteSyntheticModel(const SyntheticSpec& spec);

}  // namespace kvserve::engine::testing

#endif  // KVSERVE_TESTS_ENGINE_SYNTHETIC_MODEL_H_
