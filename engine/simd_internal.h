// Run-time choice of the instruction set used by the kernels (kernels.cc, attention.cc), and
// hooks for tests. Not part of the engine's public surface: only kernel sources and tests include
// this.
//
// The ISA is chosen once from CpuFeatures() and the environment:
//   KVSERVE_DISABLE_AVX512=1  never use the AVX-512 paths (AVX2+FMA if present, else scalar);
//   KVSERVE_DISABLE_SIMD=1    always use the scalar fallback;
//   KVSERVE_ISA=NAME          the cap of quant/isa.h: scalar, or avx2/avxvnni (no AVX-512).
// Thread-safety: ActiveIsa() is safe from any thread; SetIsaForTesting() must not race with
// running kernels (tests call it between kernel calls).
#ifndef KVSERVE_ENGINE_SIMD_INTERNAL_H_
#define KVSERVE_ENGINE_SIMD_INTERNAL_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/cpu_features.h"

namespace kvserve::engine::internal {

enum class Isa { kScalar, kAvx2, kAvx512 };

std::string_view IsaName(Isa isa);

// The best ISA allowed by the CPU and the two switches above (pure; used by ActiveIsa()).
Isa SelectIsa(const CpuFeatureSet& cpu, bool disable_avx512, bool disable_simd);

// The ISA kernels currently dispatch to.
Isa ActiveIsa();

// Every ISA this CPU can run, scalar first.
std::vector<Isa> AvailableIsas();

// Forces kernels onto `isa` (must be in AvailableIsas()); returns false otherwise.
bool SetIsaForTesting(Isa isa);
// Back to the choice made from the CPU and environment.
void ResetIsaForTesting();

// y[i] = exp(x[i]) with the kernels' vectorized exp, for x[i] <= 0 (the only inputs softmax and
// SiLU give it); results below exp(-87.33) are flushed to 0. Exposed to test its accuracy.
void VectorExpForTesting(const float* x, float* y, int64_t n);

}  // namespace kvserve::engine::internal

#endif  // KVSERVE_ENGINE_SIMD_INTERNAL_H_
