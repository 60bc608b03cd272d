#include "engine/kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/kernel_check_internal.h"
#include "engine/simd_internal.h"
#include "engine/simd_vec-inl.h"

namespace kvserve::engine {

// Per-ISA copies of the row kernels.
#define KVSERVE_SIMD_BODY "engine/kernels_simd.inc"
#include "engine/simd_instantiate.inc"

namespace internal {
namespace {

bool EnvFlagSet(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

// KVSERVE_ISA (see quant/isa.h) caps these kernels too: scalar -> scalar; avx2 or avxvnni ->
// no AVX-512.
bool IsaCapIs(std::initializer_list<const char*> names) {
  const char* value = std::getenv("KVSERVE_ISA");
  if (value == nullptr) return false;
  for (const char* name : names) {
    if (std::strcmp(value, name) == 0) return true;
  }
  return false;
}

Isa DefaultIsa() {
  static const Isa isa =
      SelectIsa(CpuFeatures(),
                EnvFlagSet("KVSERVE_DISABLE_AVX512") || IsaCapIs({"avx2", "avxvnni", "scalar"}),
                EnvFlagSet("KVSERVE_DISABLE_SIMD") || IsaCapIs({"scalar"}));
  return isa;
}

constexpr int kNoOverride = -1;
std::atomic<int> isa_override{kNoOverride};

}  // namespace

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

Isa SelectIsa(const CpuFeatureSet& cpu, bool disable_avx512, bool disable_simd) {
  if (disable_simd) return Isa::kScalar;
  // F16C comes with every AVX2 CPU sold; the K/V and weight kernels widen f16 with it.
  if (!cpu.f16c) return Isa::kScalar;
  if (!disable_avx512 && cpu.avx512f && cpu.avx512bw && cpu.avx512vl) return Isa::kAvx512;
  if (cpu.avx2 && cpu.fma) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa ActiveIsa() {
  const int forced = isa_override.load(std::memory_order_relaxed);
  return forced == kNoOverride ? DefaultIsa() : static_cast<Isa>(forced);
}

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> isas = {Isa::kScalar};
  const Isa best = SelectIsa(CpuFeatures(), false, false);
  if (best == Isa::kAvx2 || best == Isa::kAvx512) {
    if (CpuFeatures().avx2 && CpuFeatures().fma) isas.push_back(Isa::kAvx2);
  }
  if (best == Isa::kAvx512) isas.push_back(Isa::kAvx512);
  return isas;
}

bool SetIsaForTesting(Isa isa) {
  for (Isa available : AvailableIsas()) {
    if (available == isa) {
      isa_override.store(static_cast<int>(isa), std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

void ResetIsaForTesting() { isa_override.store(kNoOverride, std::memory_order_relaxed); }

void VectorExpForTesting(const float* x, float* y, int64_t n) {
  switch (ActiveIsa()) {
    case Isa::kAvx512:
      return simd_avx512::ExpArray(x, y, n);
    case Isa::kAvx2:
      return simd_avx2::ExpArray(x, y, n);
    case Isa::kScalar:
      return simd_scalar::ExpArray(x, y, n);
  }
}

}  // namespace internal

namespace {

using internal::Isa;

// Below this many elements a kernel runs on the calling thread: waking the OpenMP team costs a
// few microseconds, more than the work.
constexpr int64_t kParallelElements = 1 << 15;

struct RowKernels {
  void (*rms_norm)(const float*, const float*, float*, int64_t, float);
  void (*add)(float*, const float*, int64_t);
  void (*swiglu)(const float*, float*, int64_t);
  void (*softmax)(float*, int64_t);
};

RowKernels KernelsFor(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return {simd_avx512::RmsNormRow, simd_avx512::AddRow, simd_avx512::SwiGluRow,
              simd_avx512::SoftmaxRow};
    case Isa::kAvx2:
      return {simd_avx2::RmsNormRow, simd_avx2::AddRow, simd_avx2::SwiGluRow,
              simd_avx2::SoftmaxRow};
    case Isa::kScalar:
      break;
  }
  return {simd_scalar::RmsNormRow, simd_scalar::AddRow, simd_scalar::SwiGluRow,
          simd_scalar::SoftmaxRow};
}

RowKernels Kernels() { return KernelsFor(internal::ActiveIsa()); }

}  // namespace

void RmsNorm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim,
             float eps) {
  const auto rms_norm = Kernels().rms_norm;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) rms_norm(x + r * dim, weight, out + r * dim, dim, eps);
}

void AddInPlace(float* x, const float* y, int64_t n) {
  const auto add = Kernels().add;
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= 4 * kParallelElements)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk;
    add(x + begin, y + begin, std::min(kChunk, n - begin));
  }
}

void AddBias(float* x, const float* bias, int64_t rows, int64_t cols) {
  const auto add = Kernels().add;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * cols >= 4 * kParallelElements)
  for (int64_t r = 0; r < rows; ++r) add(x + r * cols, bias, cols);
}

void SwiGlu(const float* gate_up, float* out, int64_t rows, int64_t inter) {
  const auto swiglu = Kernels().swiglu;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * inter >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) swiglu(gate_up + r * 2 * inter, out + r * inter, inter);
}

void SoftmaxRows(float* x, int64_t rows, int64_t cols) {
  const auto softmax = Kernels().softmax;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * cols >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) softmax(x + r * cols, cols);
}

namespace {

// (cos, sin) of position * inv_freq[i] for i < half, angle and trigonometry in double.
void ComputeCosSin(const RopeTable& table, int64_t position, float* cos_sin) {
  const int half = table.head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * static_cast<double>(table.inv_freq[i]);
    cos_sin[2 * i] = static_cast<float>(std::cos(angle));
    cos_sin[2 * i + 1] = static_cast<float>(std::sin(angle));
  }
}

}  // namespace

RopeTable::RopeTable(int head_dim_in, float base, const std::vector<float>& freq_divisors)
    : head_dim(head_dim_in) {
  KVSERVE_KERNEL_CHECK(head_dim > 0 && head_dim % 2 == 0, "RoPE head_dim must be even");
  const int half = head_dim / 2;
  KVSERVE_KERNEL_CHECK(freq_divisors.empty() || static_cast<int>(freq_divisors.size()) == half,
                       "RoPE frequency divisors must number head_dim / 2");
  inv_freq.resize(half);
  for (int i = 0; i < half; ++i) {
    const double divisor = freq_divisors.empty() ? 1.0 : static_cast<double>(freq_divisors[i]);
    inv_freq[i] = static_cast<float>(
        std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / head_dim) / divisor);
  }
  cos_sin.resize(static_cast<size_t>(kCachedPositions) * head_dim);
  for (int p = 0; p < kCachedPositions; ++p) {
    ComputeCosSin(*this, p, cos_sin.data() + static_cast<size_t>(p) * head_dim);
  }
}

// The rotation itself is a few multiplies per pair next to the angle lookup, and the
// adjacent-pairs layout would need lane shuffles: plain loops (auto-vectorized where the
// compiler can) are enough here.
void ApplyRope(float* x, int64_t rows, int num_heads, const int32_t* positions,
               const RopeTable& table, RopeStyle style) {
  const int head_dim = table.head_dim;
  const int half = head_dim / 2;
  const int64_t row_stride = static_cast<int64_t>(num_heads) * head_dim;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * row_stride >= kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t position = positions[r];
    KVSERVE_KERNEL_CHECK(position >= 0, "RoPE position must be non-negative");
    std::vector<float> computed;
    const float* cs;
    if (position < RopeTable::kCachedPositions) {
      cs = table.cos_sin.data() + static_cast<size_t>(position) * head_dim;
    } else {
      computed.resize(head_dim);
      ComputeCosSin(table, position, computed.data());
      cs = computed.data();
    }
    for (int h = 0; h < num_heads; ++h) {
      float* head = x + r * row_stride + static_cast<int64_t>(h) * head_dim;
      if (style == RopeStyle::kAdjacentPairs) {
        for (int i = 0; i < half; ++i) {
          const float c = cs[2 * i], s = cs[2 * i + 1];
          const float x0 = head[2 * i], x1 = head[2 * i + 1];
          head[2 * i] = x0 * c - x1 * s;
          head[2 * i + 1] = x0 * s + x1 * c;
        }
      } else {
        for (int i = 0; i < half; ++i) {
          const float c = cs[2 * i], s = cs[2 * i + 1];
          const float x0 = head[i], x1 = head[i + half];
          head[i] = x0 * c - x1 * s;
          head[i + half] = x0 * s + x1 * c;
        }
      }
    }
  }
}

}  // namespace kvserve::engine
