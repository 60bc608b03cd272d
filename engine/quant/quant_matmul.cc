#include "engine/quant/quant_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/quant/reference.h"

namespace kvserve::engine::quant {

// The SIMD paths: kernels_isa.inc compiled once per instruction set.
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace isa_avx2 {
#define KVSERVE_QUANT_AVX2
#include "engine/quant/kernels_isa.inc"
#undef KVSERVE_QUANT_AVX2
}  // namespace isa_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
namespace isa_avxvnni {
#define KVSERVE_QUANT_AVXVNNI
#include "engine/quant/kernels_isa.inc"
#undef KVSERVE_QUANT_AVXVNNI
}  // namespace isa_avxvnni
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
// GCC 12 false positive on the _mm512_undefined_* idiom inside its own intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace isa_avx512 {
#define KVSERVE_QUANT_AVX512
#include "engine/quant/kernels_isa.inc"
#undef KVSERVE_QUANT_AVX512
}  // namespace isa_avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,amx-tile,amx-int8")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace isa_amx {
#define KVSERVE_QUANT_AMX
#include "engine/quant/kernels_isa.inc"
#undef KVSERVE_QUANT_AMX
}  // namespace isa_amx
#pragma GCC diagnostic pop
#pragma GCC pop_options

absl::StatusOr<QuantMatrix> QuantMatrix::Create(const FormatInfo& format, const uint8_t* rows,
                                                int64_t n, int64_t k, QuantIsa isa) {
  if (!QuantIsaSupported(isa, CpuFeatures())) {
    return absl::InvalidArgumentError(
        absl::StrCat("this CPU cannot run the ", std::string(QuantIsaName(isa)), " kernels"));
  }
  if (n <= 0 || k <= 0 || k % format.block_k != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a ", std::string(GgmlTypeName(format.type)),
                                                   " matrix needs rows of a multiple of ",
                                                   format.block_k, " values, not ", k));
  }
  QuantMatrix m;
  m.format_ = &format;
  m.isa_ = isa;
  m.n_ = n;
  m.k_ = k;
  if (isa == QuantIsa::kScalar) {
    const int64_t bytes = n * (k / format.block_k) * format.block_bytes;
    m.blocks_.assign(rows, rows + bytes);
    return m;
  }
  absl::StatusOr<PackedTiles> tiles = PackTiles(format, rows, n, k);
  if (!tiles.ok()) return tiles.status();
  m.tiles_ = *std::move(tiles);
  return m;
}

int64_t QuantMatrix::bytes() const {
  return isa_ == QuantIsa::kScalar ? static_cast<int64_t>(blocks_.size()) : tiles_.bytes();
}

void QuantMatrix::Multiply(const QuantizedRows& a, int64_t unit_begin, int64_t unit_end, float* y,
                           int64_t ldy) const {
  switch (isa_) {
    case QuantIsa::kScalar:
      return ReferenceMatmul(*format_, blocks_.data(), k_, unit_begin * kTileRows,
                             std::min(n_, unit_end * kTileRows), a, y + unit_begin * kTileRows,
                             ldy);
    case QuantIsa::kAvx2:
      return isa_avx2::MatmulTiles(tiles_, a, unit_begin, unit_end, y, ldy);
    case QuantIsa::kAvxVnni:
      return isa_avxvnni::MatmulTiles(tiles_, a, unit_begin, unit_end, y, ldy);
    case QuantIsa::kAvx512:
      return isa_avx512::MatmulTiles(tiles_, a, unit_begin, unit_end, y, ldy);
    case QuantIsa::kAmx:
      if (a.rows < 16) return isa_avx512::MatmulTiles(tiles_, a, unit_begin, unit_end, y, ldy);
      return isa_amx::MatmulTiles(tiles_, a, unit_begin, unit_end, y, ldy);
  }
}

}  // namespace kvserve::engine::quant
