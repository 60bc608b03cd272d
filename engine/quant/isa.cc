#include "engine/quant/isa.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace kvserve::engine::quant {
namespace {

constexpr QuantIsa kAll[] = {QuantIsa::kScalar, QuantIsa::kAvx2, QuantIsa::kAvxVnni,
                             QuantIsa::kAvx512, QuantIsa::kAmx};

// Linux hands out the AMX tile state only to processes that ask for it (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA).
bool AmxPermitted() {
  static const bool permitted = [] {
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return permitted;
}

}  // namespace

std::string_view QuantIsaName(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::kScalar:
      return "scalar";
    case QuantIsa::kAvx2:
      return "avx2";
    case QuantIsa::kAvxVnni:
      return "avxvnni";
    case QuantIsa::kAvx512:
      return "avx512";
    case QuantIsa::kAmx:
      return "amx";
  }
  return "unknown";
}

absl::StatusOr<QuantIsa> ParseQuantIsa(std::string_view name) {
  for (QuantIsa isa : kAll) {
    if (QuantIsaName(isa) == name) return isa;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown instruction set '", std::string(name),
                                                 "': use scalar, avx2, avxvnni, avx512 or amx"));
}

bool QuantIsaSupported(QuantIsa isa, const CpuFeatureSet& cpu) {
  const bool avx2 = cpu.avx2 && cpu.fma && cpu.f16c;
  const bool avx512 = avx2 && cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512_vnni;
  switch (isa) {
    case QuantIsa::kScalar:
      return true;
    case QuantIsa::kAvx2:
      return avx2;
    case QuantIsa::kAvxVnni:
      return avx2 && cpu.avx_vnni;
    case QuantIsa::kAvx512:
      return avx512;
    case QuantIsa::kAmx:
      return avx512 && cpu.amx_tile && cpu.amx_int8 && AmxPermitted();
  }
  return false;
}

std::vector<QuantIsa> AvailableQuantIsas() {
  std::vector<QuantIsa> out;
  for (QuantIsa isa : kAll) {
    if (QuantIsaSupported(isa, CpuFeatures())) out.push_back(isa);
  }
  return out;
}

QuantIsa DefaultQuantIsa() {
  static const QuantIsa chosen = [] {
    // amx is opt-in: on the first AMX machine it ran on (Xeon with AMX-INT8, 2026-12-02) its
    // tile products were slower than avx512 at every row count (m=32 Q4_K_M 124 vs 91 ms per
    // step of the 420M shape): each 32-value chunk is a store of the unpacked weights, two tile
    // loads and a tile store per 16 rows, which costs more than the vpdpbusd it replaces.
    QuantIsa cap = QuantIsa::kAvx512;
    if (const char* env = std::getenv("KVSERVE_ISA"); env != nullptr && env[0] != '\0') {
      absl::StatusOr<QuantIsa> parsed = ParseQuantIsa(env);
      if (parsed.ok()) {
        cap = *parsed;
      } else {
        std::fprintf(stderr, "kvserve: KVSERVE_ISA ignored: %s\n",
                     std::string(parsed.status().message()).c_str());
      }
    }
    QuantIsa best = QuantIsa::kScalar;
    for (QuantIsa isa : AvailableQuantIsas()) {
      if (static_cast<int>(isa) <= static_cast<int>(cap)) best = isa;
    }
    return best;
  }();
  return chosen;
}

std::string DescribeQuantIsaChoice() {
  std::string out = absl::StrCat(std::string(QuantIsaName(DefaultQuantIsa())), " (this CPU runs");
  for (QuantIsa isa : AvailableQuantIsas())
    absl::StrAppend(&out, " ", std::string(QuantIsaName(isa)));
  const char* env = std::getenv("KVSERVE_ISA");
  if (env != nullptr && env[0] != '\0') absl::StrAppend(&out, "; KVSERVE_ISA=", env);
  return out + ")";
}

}  // namespace kvserve::engine::quant
