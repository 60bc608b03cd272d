// What the host CPU can do, probed once with cpuid. Kernels dispatch on these at run time so
// one binary runs everywhere and uses AVX-512 where present.
//
// Thread-safety: CpuFeatures() is initialised once (thread-safe static) and immutable.
#ifndef KVSERVE_ENGINE_CPU_FEATURES_H_
#define KVSERVE_ENGINE_CPU_FEATURES_H_

namespace kvserve::engine {

struct CpuFeatureSet {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  bool f16c = false;
  bool avx_vnni = false;  // VEX-encoded vpdpbusd on 256-bit vectors
  bool amx_tile = false;  // AMX tiles usable by the OS (XCR0 enables the tile state)
  bool amx_int8 = false;
};

const CpuFeatureSet& CpuFeatures();

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_CPU_FEATURES_H_
