// KvPagePool: the engine's storage for cached keys and values, in fixed-size pages.
//
// A page holds `page_size` consecutive token positions of one sequence for every layer, K and
// V. Which pages belong to which sequence is not known here: callers pass a page table (page
// ids in position order), so position p of a sequence lives in page_table[p / page_size] at
// slot p % page_size. Handing pages out is the scheduler's KvCacheManager's job.
//
// Layout, per layer and K/V: [num_pages][num_kv_heads][page_size][row], so one head's keys
// inside a page are contiguous for the attention kernel. A row is one token's head_dim values in
// the pool's dtype: f32, bf16 or f16 elements, or for q8_0 head_dim / 32 blocks of ggml's
// block_q8_0 (an f16 scale d, then 32 int8 quants; value = d * q), as llama.cpp's
// `-ctk q8_0 -ctv q8_0` stores them. Values are rounded once, when written.
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
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kvserve::engine {

enum class KvDType { kF32, kBF16, kF16, kQ8_0 };

// "f32", "bf16", "f16", "q8_0".
const char* KvDTypeName(KvDType dtype);
// Parses a name of KvDTypeName; InvalidArgument naming the accepted values otherwise.
absl::StatusOr<KvDType> ParseKvDType(absl::string_view name);
// Bytes of one token's head_dim values in `dtype` (head_dim % 32 == 0 for q8_0).
size_t KvRowBytes(KvDType dtype, int head_dim);

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
  // InvalidArgument for non-positive sizes or a q8_0 head_dim that is not a multiple of 32;
  // ResourceExhausted if memory cannot be allocated.
  static absl::StatusOr<std::unique_ptr<KvPagePool>> Create(const KvPoolShape& shape);

  // Bytes one page takes across all layers, K and V.
  static size_t PageBytes(const KvPoolShape& shape);

  const KvPoolShape& shape() const { return shape_; }
  // Bytes of one token's row of one head, and of one head's block (page_size rows) in a page.
  size_t row_bytes() const { return KvRowBytes(shape_.dtype, shape_.head_dim); }
  size_t block_bytes() const { return row_bytes() * shape_.page_size; }

  // Stores K and V of `num_tokens` tokens of one sequence for `layer`. k and v are
  // [num_tokens, num_kv_heads * head_dim] f32 (converted to the pool dtype); token i goes to
  // position positions[i], located through page_table.
  void Write(int layer, absl::Span<const int32_t> page_table, const int32_t* positions,
             int64_t num_tokens, const float* k, const float* v);

  // Start of head `kv_head`'s keys (values) in `page` for `layer`: page_size rows.
  void* KeyBlock(int layer, int32_t page, int kv_head);
  const void* KeyBlock(int layer, int32_t page, int kv_head) const;
  void* ValueBlock(int layer, int32_t page, int kv_head);
  const void* ValueBlock(int layer, int32_t page, int kv_head) const;

 private:
  explicit KvPagePool(const KvPoolShape& shape);
  size_t LayerStride() const;  // bytes per layer for K (same for V)
  void WriteRow(const float* src, void* dst) const;
  KvPoolShape shape_;
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> keys_{nullptr, nullptr};
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> values_{nullptr, nullptr};
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_KV_PAGE_POOL_H_
