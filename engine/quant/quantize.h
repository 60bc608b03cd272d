// ggml's reference quantizers for weights (quantize_row_q8_0_ref, quantize_row_q5_0_ref,
// quantize_row_q4_K_ref, learned from ggml-quants.c and written here from that description),
// for `--weight-dtype q8_0|q4_k`: float weights (F16/BF16/F32 files, safetensors folders)
// become ggml blocks at load and then take the quantized kernels.
//
// Thread-safety: pure.
#ifndef KVSERVE_ENGINE_QUANT_QUANTIZE_H_
#define KVSERVE_ENGINE_QUANT_QUANTIZE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/dtype.h"

namespace kvserve::engine::quant {

// Quantizes n rows of k floats (row-major) into ggml blocks of `type` (Q8_0, Q5_0 or Q4_K).
// InvalidArgument for other types or a k that is not a multiple of the block.
absl::StatusOr<std::vector<uint8_t>> QuantizeRows(GgmlType type, const float* x, int64_t n,
                                                  int64_t k);

// The type a float matrix of rows of k values becomes under `--weight-dtype`: `wanted` where
// its block fits k; where it does not, the fallback llama.cpp's quantizer uses (Q4_K -> Q5_0).
// Q8_0's 32-value blocks fit every row length kvserve loads.
GgmlType QuantTypeForRows(GgmlType wanted, int64_t k);

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_QUANTIZE_H_
