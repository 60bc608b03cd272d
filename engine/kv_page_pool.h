// KvPagePool: the engine's storage for cached keys and values, in fixed-size pages.
//
// A page holds `page_size` consecutive token positions of one sequence for every layer, K and
// V. Which pages belong to which sequence is not known here: callers pass a page table (page
// ids in position order), so position p of a sequence lives in page_table[p / page_size] at
// slot p % page_size. Handing pages out is the scheduler's KvCacheManager's job.
//
// Layout, per layer and K/V: [num_pages][num_kv_heads][page_size][head_dim], so one head's keys
// inside a page are contiguous for the attention kernel. Element type f32 or bf16.
//
// Ownership: owns its memory. Thread-safety: none; the engine thread writes, and attention
// reads inside a step (the reads of one step never race with its own writes because the
// runner writes all new K/V before running attention).
#ifndef KVSERVE_ENGINE_KV_PAGE_POOL_H_
#define KVSERVE_ENGINE_KV_PAGE_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvserve::engine {

enum class KvDType { kF32, kBF16 };

struct KvPoolShape {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int page_size = 16;
  int num_pages = 0;
  KvDType dtype = KvDType::kF32;
};

class KvPagePool {
 public:
  // InvalidArgument for non-positive sizes; ResourceExhausted if memory cannot be allocated.
  static absl::StatusOr<std::unique_ptr<KvPagePool>> Create(const KvPoolShape& shape);

  // Bytes one page takes across all layers, K and V.
  static size_t PageBytes(const KvPoolShape& shape);

  const KvPoolShape& shape() const { return shape_; }
  size_t element_bytes() const { return shape_.dtype == KvDType::kF32 ? 4 : 2; }

  // Stores K and V of `num_tokens` tokens of one sequence for `layer`. k and v are
  // [num_tokens, num_kv_heads * head_dim] f32 (converted to the pool dtype); token i goes to
  // position positions[i], located through page_table.
  void Write(int layer, absl::Span<const int32_t> page_table, const int32_t* positions,
             int64_t num_tokens, const float* k, const float* v);

  // Start of head `kv_head`'s keys (values) in `page` for `layer`: page_size x head_dim elements.
  void* KeyBlock(int layer, int32_t page, int kv_head);
  const void* KeyBlock(int layer, int32_t page, int kv_head) const;
  void* ValueBlock(int layer, int32_t page, int kv_head);
  const void* ValueBlock(int layer, int32_t page, int kv_head) const;

 private:
  explicit KvPagePool(const KvPoolShape& shape);
  size_t LayerStride() const;  // elements per layer for K (same for V)
  KvPoolShape shape_;
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> keys_{nullptr, nullptr};
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> values_{nullptr, nullptr};
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_KV_PAGE_POOL_H_
