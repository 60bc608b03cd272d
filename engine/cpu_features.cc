#include "engine/cpu_features.h"

#include <cpuid.h>

namespace kvserve::engine {
namespace {

CpuFeatureSet Probe() {
  CpuFeatureSet f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  const bool tiles_os = (xcr0 & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ymm_os && (b & (1u << 5));
  f.fma = f.fma && ymm_os;
  f.avx512f = zmm_os && (b & (1u << 16));
  f.avx512bw = f.avx512f && (b & (1u << 30));
  f.avx512vl = f.avx512f && (b & (1u << 31));
  f.avx512_vnni = f.avx512f && (c & (1u << 11));
  f.amx_tile = tiles_os && (d & (1u << 24));
  f.amx_int8 = f.amx_tile && (d & (1u << 25));
  f.f16c = f.f16c && ymm_os;
  __cpuid_count(7, 1, a, b, c, d);
  f.avx512_bf16 = f.avx512f && (a & (1u << 5));
  f.avx_vnni = ymm_os && (a & (1u << 4));
  return f;
}

}  // namespace

const CpuFeatureSet& CpuFeatures() {
  static const CpuFeatureSet features = Probe();
  return features;
}

}  // namespace kvserve::engine
