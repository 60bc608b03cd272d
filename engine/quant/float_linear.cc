#include "engine/quant/float_linear.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/dtype.h"

namespace kvserve::engine::quant {

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace float_avx2 {
#define KVSERVE_FLOAT_AVX2
#include "engine/quant/float_kernels_isa.inc"
#undef KVSERVE_FLOAT_AVX2
}  // namespace float_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace float_avx512 {
#define KVSERVE_FLOAT_AVX512
#include "engine/quant/float_kernels_isa.inc"
#undef KVSERVE_FLOAT_AVX512
}  // namespace float_avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace {

constexpr int64_t kTilesPerRun = 4;  // OpenMP work unit: neighbouring tiles stream together

int ElemBytes(FloatStorage s) { return s == FloatStorage::kF16 ? 2 : 4; }

void PutValue(uint8_t* p, FloatStorage s, float v) {
  if (s == FloatStorage::kF16) {
    const uint16_t h = FloatToHalf(v);
    std::memcpy(p, &h, 2);
  } else {
    std::memcpy(p, &v, 4);
  }
}

}  // namespace

std::string_view FloatStorageName(FloatStorage storage) {
  return storage == FloatStorage::kF16 ? "f16" : "f32";
}

float FloatDotReference(const void* w, FloatStorage storage, const float* x, int64_t k) {
  float acc = 0.0f;
  for (int64_t j = 0; j < k; ++j) {
    float wj;
    if (storage == FloatStorage::kF16) {
      uint16_t h;
      std::memcpy(&h, static_cast<const uint8_t*>(w) + 2 * j, 2);
      wj = HalfToFloat(h);
    } else {
      std::memcpy(&wj, static_cast<const uint8_t*>(w) + 4 * j, 4);
    }
    acc = std::fma(wj, x[j], acc);
  }
  return acc;
}

absl::StatusOr<std::unique_ptr<FloatLinear>> FloatLinear::Create(const float* w, int64_t n,
                                                                 int64_t k, FloatStorage storage,
                                                                 QuantIsa isa, const float* bias) {
  if (n <= 0 || k <= 0) return absl::InvalidArgumentError("FloatLinear: empty weights");
  if (!QuantIsaSupported(isa, CpuFeatures())) {
    return absl::InvalidArgumentError(
        absl::StrCat("this CPU cannot run the ", std::string(QuantIsaName(isa)), " kernels"));
  }
  std::unique_ptr<FloatLinear> linear(new FloatLinear());
  linear->n_ = n;
  linear->k_ = k;
  linear->tiles_ = (n + kTileRows - 1) / kTileRows;
  linear->storage_ = storage;
  linear->isa_ = isa;
  const int e = ElemBytes(storage);
  const bool plain = isa == QuantIsa::kScalar;
  const int64_t rows = plain ? n : linear->tiles_ * kTileRows;
  linear->bytes_ = (rows * k * e + 63) / 64 * 64;
  linear->data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, linear->bytes_)));
  if (!linear->data_) return absl::ResourceExhaustedError("FloatLinear: out of memory");
  uint8_t* d = linear->data_.get();
  std::memset(d, 0, linear->bytes_);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t at = plain ? r * k + j
                               : (r / kTileRows) * kTileRows * k + j * kTileRows + r % kTileRows;
      PutValue(d + at * e, storage, w[r * k + j]);
    }
  }
  if (bias != nullptr) linear->bias_.assign(bias, bias + n);
  return linear;
}

void FloatLinear::MultiplyTiles(const float* x, int64_t m, int64_t tile_begin, int64_t tile_end,
                                float* y) const {
  const bool f16 = storage_ == FloatStorage::kF16;
  switch (isa_) {
    case QuantIsa::kScalar: {
      const int64_t end = std::min(n_, tile_end * kTileRows);
      const int e = ElemBytes(storage_);
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t n = tile_begin * kTileRows; n < end; ++n) {
          y[r * n_ + n] = FloatDotReference(data_.get() + n * k_ * e, storage_, x + r * k_, k_);
        }
      }
      return;
    }
    case QuantIsa::kAvx2:
    case QuantIsa::kAvxVnni:
      return float_avx2::FloatTiles(f16, data_.get(), n_, k_, x, m, tile_begin, tile_end, y);
    case QuantIsa::kAvx512:
    case QuantIsa::kAmx:
      return float_avx512::FloatTiles(f16, data_.get(), n_, k_, x, m, tile_begin, tile_end, y);
  }
}

void FloatLinear::Forward(const float* x, int64_t m, float* y) {
  const int64_t runs = (tiles_ + kTilesPerRun - 1) / kTilesPerRun;
  // Dynamic, by runs of neighbouring tiles, as QuantizedLinear (which thread computes a tile
  // never changes its result).
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < runs; ++i) {
    const int64_t begin = i * kTilesPerRun, end = std::min(tiles_, begin + kTilesPerRun);
    MultiplyTiles(x, m, begin, end, y);
    if (!bias_.empty()) {
      const int64_t last = std::min(n_, end * kTileRows);
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = begin * kTileRows; j < last; ++j) y[r * n_ + j] += bias_[j];
      }
    }
  }
}

std::string FloatLinear::Describe() const {
  return absl::StrCat(std::string(FloatStorageName(storage_)), " x f32 ",
                      std::string(QuantIsaName(isa_)));
}

int64_t FloatLinear::weight_bytes() const { return bytes_; }

}  // namespace kvserve::engine::quant
