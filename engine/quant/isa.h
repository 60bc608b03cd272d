// The instruction-set paths of the quantized kernels, chosen at run time.
//
//   scalar   portable C++ over ggml's own blocks: the reference every other path must equal
//   avx2     AVX2 + FMA: u8 x s8 products with vpmaddubsw (pairs into int16, then int32)
//   avxvnni  AVX-VNNI: the avx2 kernels with vpdpbusd on 256-bit vectors
//   avx512   AVX-512 F/BW/VL/VNNI: vpdpbusd on 512-bit vectors
//   amx      AMX-INT8 tiles for steps of 16 rows or more (fewer rows take the avx512 path);
//            opt-in with KVSERVE_ISA=amx, because it is slower than avx512 so far
//
// Each path is used only where the CPU has its instructions; the default is the best of them
// up to avx512. KVSERVE_ISA=NAME (one of the names above) caps the choice so that tests can run
// every lower path on a capable machine, and KVSERVE_ISA=amx lets amx be chosen.
// All paths compute the same integer sums and combine them with the same float operations in
// the same order, so their results are bitwise equal (see quant_matmul.h).
//
// Thread-safety: all functions are thread-safe.
#ifndef KVSERVE_ENGINE_QUANT_ISA_H_
#define KVSERVE_ENGINE_QUANT_ISA_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cpu_features.h"

namespace kvserve::engine::quant {

enum class QuantIsa { kScalar, kAvx2, kAvxVnni, kAvx512, kAmx };

std::string_view QuantIsaName(QuantIsa isa);
absl::StatusOr<QuantIsa> ParseQuantIsa(std::string_view name);

// Whether `cpu` can run `isa` (amx also needs the kernel's permission, asked for once).
bool QuantIsaSupported(QuantIsa isa, const CpuFeatureSet& cpu);

// Every path this machine can run, scalar first.
std::vector<QuantIsa> AvailableQuantIsas();

// The best path this machine can run, capped by KVSERVE_ISA when it is set (an unknown value
// is reported once on stderr and ignored).
QuantIsa DefaultQuantIsa();

// For the start-up log: "avx512 (this CPU runs scalar avx2 avxvnni avx512; capped by
// KVSERVE_ISA=...)".
std::string DescribeQuantIsaChoice();

}  // namespace kvserve::engine::quant

#endif  // KVSERVE_ENGINE_QUANT_ISA_H_
