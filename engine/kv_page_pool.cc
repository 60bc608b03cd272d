#include "engine/kv_page_pool.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "engine/simd_vec-inl.h"

namespace kvserve::engine {
namespace {

constexpr size_t kAlignment = 64;

void FreeAligned(uint8_t* p) { std::free(p); }

// Elements of one layer's K (or V): num_pages * num_kv_heads * page_size * head_dim, or 0 on
// size_t overflow.
size_t ElementsPerLayer(const KvPoolShape& s) {
  size_t n = 1;
  for (size_t factor : {static_cast<size_t>(s.num_pages), static_cast<size_t>(s.num_kv_heads),
                        static_cast<size_t>(s.page_size), static_cast<size_t>(s.head_dim)}) {
    if (n > std::numeric_limits<size_t>::max() / factor) return 0;
    n *= factor;
  }
  return n;
}

}  // namespace

KvPagePool::KvPagePool(const KvPoolShape& shape) : shape_(shape) {}

size_t KvPagePool::PageBytes(const KvPoolShape& shape) {
  const size_t element_bytes = shape.dtype == KvDType::kF32 ? 4 : 2;
  return 2 * static_cast<size_t>(shape.num_layers) * shape.num_kv_heads * shape.page_size *
         shape.head_dim * element_bytes;
}

size_t KvPagePool::LayerStride() const {
  return static_cast<size_t>(shape_.num_pages) * shape_.num_kv_heads * shape_.page_size *
         shape_.head_dim;
}

absl::StatusOr<std::unique_ptr<KvPagePool>> KvPagePool::Create(const KvPoolShape& shape) {
  if (shape.num_layers <= 0 || shape.num_kv_heads <= 0 || shape.head_dim <= 0 ||
      shape.page_size <= 0 || shape.num_pages <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV page pool sizes must be positive: num_layers=", shape.num_layers,
                     " num_kv_heads=", shape.num_kv_heads, " head_dim=", shape.head_dim,
                     " page_size=", shape.page_size, " num_pages=", shape.num_pages));
  }
  const size_t element_bytes = shape.dtype == KvDType::kF32 ? 4 : 2;
  const size_t per_layer = ElementsPerLayer(shape);
  const size_t max_bytes = std::numeric_limits<size_t>::max() / 4;
  if (per_layer == 0 || per_layer > max_bytes / element_bytes / shape.num_layers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV page pool of ", shape.num_pages, " pages is too large to address"));
  }
  // aligned_alloc wants a multiple of the alignment. The memory is not zeroed: the OS commits
  // pages lazily, and attention only reads positions that were written.
  size_t bytes = per_layer * shape.num_layers * element_bytes;
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
  const size_t offset = layer * LayerStride() + block * shape_.page_size * shape_.head_dim;
  return keys_.get() + offset * element_bytes();
}

void* KvPagePool::ValueBlock(int layer, int32_t page, int kv_head) {
  return const_cast<void*>(static_cast<const KvPagePool*>(this)->ValueBlock(layer, page, kv_head));
}

const void* KvPagePool::ValueBlock(int layer, int32_t page, int kv_head) const {
  const size_t block = static_cast<size_t>(page) * shape_.num_kv_heads + kv_head;
  const size_t offset = layer * LayerStride() + block * shape_.page_size * shape_.head_dim;
  return values_.get() + offset * element_bytes();
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
    const size_t slot_offset = static_cast<size_t>(position % page_size) * head_dim;
    for (int h = 0; h < shape_.num_kv_heads; ++h) {
      const float* k_src = k + t * row + static_cast<int64_t>(h) * head_dim;
      const float* v_src = v + t * row + static_cast<int64_t>(h) * head_dim;
      if (shape_.dtype == KvDType::kF32) {
        std::memcpy(static_cast<float*>(KeyBlock(layer, page, h)) + slot_offset, k_src,
                    sizeof(float) * head_dim);
        std::memcpy(static_cast<float*>(ValueBlock(layer, page, h)) + slot_offset, v_src,
                    sizeof(float) * head_dim);
      } else {
        uint16_t* k_dst = static_cast<uint16_t*>(KeyBlock(layer, page, h)) + slot_offset;
        uint16_t* v_dst = static_cast<uint16_t*>(ValueBlock(layer, page, h)) + slot_offset;
        for (int d = 0; d < head_dim; ++d) {
          k_dst[d] = FloatToBf16Bits(k_src[d]);
          v_dst[d] = FloatToBf16Bits(v_src[d]);
        }
      }
    }
  }
}

}  // namespace kvserve::engine
