#include "engine/kv_page_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "engine/dtype.h"
#include "engine/simd_vec-inl.h"

namespace kvserve::engine {
namespace {

constexpr size_t kAlignment = 64;
constexpr int kQ8Block = 32;
constexpr size_t kQ8BlockBytes = 2 + kQ8Block;  // f16 d, then 32 int8 quants

void FreeAligned(uint8_t* p) { std::free(p); }

// Bytes of one layer's K (or V): num_pages * num_kv_heads * page_size rows, or 0 on size_t
// overflow.
size_t BytesPerLayer(const KvPoolShape& s) {
  size_t n = KvRowBytes(s.dtype, s.head_dim);
  for (size_t factor : {static_cast<size_t>(s.num_pages), static_cast<size_t>(s.num_kv_heads),
                        static_cast<size_t>(s.page_size)}) {
    if (n > std::numeric_limits<size_t>::max() / factor) return 0;
    n *= factor;
  }
  return n;
}

// One 32-block as ggml's x86 quantize_row_q8_0 (which llama.cpp's K/V copy uses): d = amax/127
// kept as f16, q = round-half-even(x * 127/amax), 0 when amax = 0.
void QuantizeQ8Block(const float* x, uint8_t* dst) {
  float amax = 0.0f;
  for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const uint16_t d = FloatToHalf(amax / 127.0f);
  std::memcpy(dst, &d, sizeof d);
  int8_t* q = reinterpret_cast<int8_t*>(dst + 2);
  for (int j = 0; j < kQ8Block; ++j) {
    q[j] = static_cast<int8_t>(std::clamp(std::nearbyint(x[j] * id), -128.0f, 127.0f));
  }
}

}  // namespace

const char* KvDTypeName(KvDType dtype) {
  switch (dtype) {
    case KvDType::kF32:
      return "f32";
    case KvDType::kBF16:
      return "bf16";
    case KvDType::kF16:
      return "f16";
    case KvDType::kQ8_0:
      return "q8_0";
  }
  return "unknown";
}

absl::StatusOr<KvDType> ParseKvDType(absl::string_view name) {
  for (KvDType dtype : {KvDType::kF32, KvDType::kBF16, KvDType::kF16, KvDType::kQ8_0}) {
    if (name == KvDTypeName(dtype)) return dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("KV cache dtype must be f16, bf16, f32 or q8_0, not '", name, "'"));
}

size_t KvRowBytes(KvDType dtype, int head_dim) {
  const size_t n = static_cast<size_t>(head_dim);
  switch (dtype) {
    case KvDType::kF32:
      return 4 * n;
    case KvDType::kBF16:
    case KvDType::kF16:
      return 2 * n;
    case KvDType::kQ8_0:
      return n / kQ8Block * kQ8BlockBytes;
  }
  return 0;
}

KvPagePool::KvPagePool(const KvPoolShape& shape) : shape_(shape) {}

size_t KvPagePool::PageBytes(const KvPoolShape& shape) {
  return 2 * static_cast<size_t>(shape.num_layers) * shape.num_kv_heads * shape.page_size *
         KvRowBytes(shape.dtype, shape.head_dim);
}

size_t KvPagePool::LayerStride() const {
  return static_cast<size_t>(shape_.num_pages) * shape_.num_kv_heads * block_bytes();
}

absl::StatusOr<std::unique_ptr<KvPagePool>> KvPagePool::Create(const KvPoolShape& shape) {
  if (shape.num_layers <= 0 || shape.num_kv_heads <= 0 || shape.head_dim <= 0 ||
      shape.page_size <= 0 || shape.num_pages <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV page pool sizes must be positive: num_layers=", shape.num_layers,
                     " num_kv_heads=", shape.num_kv_heads, " head_dim=", shape.head_dim,
                     " page_size=", shape.page_size, " num_pages=", shape.num_pages));
  }
  if (shape.dtype == KvDType::kQ8_0 && shape.head_dim % kQ8Block != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache dtype q8_0 needs a head size that is a multiple of 32; this model's "
                     "is ",
                     shape.head_dim, " (use --kv-cache-dtype f16)"));
  }
  const size_t per_layer = BytesPerLayer(shape);
  const size_t max_bytes = std::numeric_limits<size_t>::max() / 4;
  if (per_layer == 0 || per_layer > max_bytes / shape.num_layers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV page pool of ", shape.num_pages, " pages is too large to address"));
  }
  // aligned_alloc wants a multiple of the alignment. The memory is not zeroed: the OS commits
  // pages lazily, and attention only reads positions that were written.
  size_t bytes = per_layer * shape.num_layers;
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  auto pool = std::unique_ptr<KvPagePool>(new KvPagePool(shape));
  pool->keys_ = {static_cast<uint8_t*>(std::aligned_alloc(kAlignment, bytes)), FreeAligned};
  pool->values_ = {static_cast<uint8_t*>(std::aligned_alloc(kAlignment, bytes)), FreeAligned};
  if (pool->keys_ == nullptr || pool->values_ == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot allocate the KV page pool: 2 x ",
                                                     bytes, " bytes for ", shape.num_pages,
                                                     " pages of ", PageBytes(shape), " bytes"));
  }
  return pool;
}

void* KvPagePool::KeyBlock(int layer, int32_t page, int kv_head) {
  return const_cast<void*>(static_cast<const KvPagePool*>(this)->KeyBlock(layer, page, kv_head));
}

const void* KvPagePool::KeyBlock(int layer, int32_t page, int kv_head) const {
  const size_t block = static_cast<size_t>(page) * shape_.num_kv_heads + kv_head;
  return keys_.get() + layer * LayerStride() + block * block_bytes();
}

void* KvPagePool::ValueBlock(int layer, int32_t page, int kv_head) {
  return const_cast<void*>(static_cast<const KvPagePool*>(this)->ValueBlock(layer, page, kv_head));
}

const void* KvPagePool::ValueBlock(int layer, int32_t page, int kv_head) const {
  const size_t block = static_cast<size_t>(page) * shape_.num_kv_heads + kv_head;
  return values_.get() + layer * LayerStride() + block * block_bytes();
}

void KvPagePool::WriteRow(const float* src, void* dst) const {
  const int n = shape_.head_dim;
  switch (shape_.dtype) {
    case KvDType::kF32:
      std::memcpy(dst, src, sizeof(float) * n);
      return;
    case KvDType::kBF16:
      for (int d = 0; d < n; ++d) static_cast<uint16_t*>(dst)[d] = FloatToBf16Bits(src[d]);
      return;
    case KvDType::kF16:
      for (int d = 0; d < n; ++d) static_cast<uint16_t*>(dst)[d] = FloatToHalf(src[d]);
      return;
    case KvDType::kQ8_0:
      for (int b = 0; b < n / kQ8Block; ++b) {
        QuantizeQ8Block(src + b * kQ8Block, static_cast<uint8_t*>(dst) + b * kQ8BlockBytes);
      }
      return;
  }
}

void KvPagePool::Write(int layer, absl::Span<const int32_t> page_table, const int32_t* positions,
                       int64_t num_tokens, const float* k, const float* v) {
  KVSERVE_CHECK_MSG(layer >= 0 && layer < shape_.num_layers, "KV write: layer out of range");
  const int page_size = shape_.page_size;
  const int head_dim = shape_.head_dim;
  const int64_t row = static_cast<int64_t>(shape_.num_kv_heads) * head_dim;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int32_t position = positions[t];
    KVSERVE_CHECK_MSG(
        position >= 0 && static_cast<size_t>(position / page_size) < page_table.size(),
        "KV write: position beyond the page table");
    const int32_t page = page_table[position / page_size];
    KVSERVE_CHECK_MSG(page >= 0 && page < shape_.num_pages, "KV write: page id out of range");
    const size_t slot_offset = static_cast<size_t>(position % page_size) * row_bytes();
    for (int h = 0; h < shape_.num_kv_heads; ++h) {
      const int64_t src = t * row + static_cast<int64_t>(h) * head_dim;
      WriteRow(k + src, static_cast<uint8_t*>(KeyBlock(layer, page, h)) + slot_offset);
      WriteRow(v + src, static_cast<uint8_t*>(ValueBlock(layer, page, h)) + slot_offset);
    }
  }
}

}  // namespace kvserve::engine
