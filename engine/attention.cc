#include "engine/attention.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/check.h"
#include "engine/simd_internal.h"
#include "engine/simd_vec-inl.h"

namespace kvserve::engine {
namespace {

// Everything a work item needs that is shared by the whole call.
struct AttentionContext {
  const KvPagePool* pool;
  int layer;
  AttentionShape shape;
  const AttentionSequence* sequences;
  const float* q;
  float* out;
};

// Rows [row_begin, row_end) (relative to the sequence's first row) of one sequence, for the
// query heads sharing KV head `kv_head`. Items write disjoint parts of `out`.
struct AttentionWorkItem {
  int32_t sequence;
  int32_t kv_head;
  int64_t row_begin;
  int64_t row_end;
  int64_t cost;  // multiply-adds, roughly: for ordering big items first
};

// Per-thread buffers, sized for the largest item of the call.
struct AttentionScratch {
  float* scores;    // [queries][context] of the item
  float* acc;       // [queries][head_dim]
  float* inv_sums;  // [queries]
  float* block;     // one K or V block widened to f32: [page_size][head_dim]
};

}  // namespace

#define KVSERVE_SIMD_BODY "engine/attention_simd.inc"
#include "engine/simd_instantiate.inc"

namespace {

using AttendFn = void (*)(const AttentionContext&, const AttentionWorkItem&,
                          const AttentionScratch&);

AttendFn SelectAttend() {
  switch (internal::ActiveIsa()) {
    case internal::Isa::kAvx512:
      return simd_avx512::AttendItem;
    case internal::Isa::kAvx2:
      return simd_avx2::AttendItem;
    case internal::Isa::kScalar:
      break;
  }
  return simd_scalar::AttendItem;
}

// Query vectors per work item. Each K/V block an item loads is reused by all its queries while
// it sits in L1, so more is better for reuse, but fewer gives more items to share between
// threads in a single long prefill; 32 keeps the score rows of an item within L2 for contexts of
// a few thousand tokens.
constexpr int kQueriesPerItem = 32;

// Below this many multiply-adds in the whole call, run on the calling thread.
constexpr int64_t kParallelWork = 1 << 16;

}  // namespace

void PagedAttention(const KvPagePool& pool, int layer, const AttentionShape& shape,
                    absl::Span<const AttentionSequence> sequences, const float* q, float* out) {
  const KvPoolShape& pool_shape = pool.shape();
  KVSERVE_CHECK_MSG(layer >= 0 && layer < pool_shape.num_layers, "attention: bad layer");
  KVSERVE_CHECK_MSG(shape.num_kv_heads == pool_shape.num_kv_heads,
                    "attention: num_kv_heads differs from the KV pool's");
  KVSERVE_CHECK_MSG(shape.head_dim == pool_shape.head_dim,
                    "attention: head_dim differs from the KV pool's");
  KVSERVE_CHECK_MSG(shape.num_heads > 0 && shape.num_heads % shape.num_kv_heads == 0,
                    "attention: num_heads must be a multiple of num_kv_heads");
  const int group = shape.num_heads / shape.num_kv_heads;
  const int page_size = pool_shape.page_size;
  const int64_t rows_per_item = std::max(1, kQueriesPerItem / group);

  std::vector<AttentionWorkItem> items;
  int64_t max_context = 0, max_queries = 0, total_cost = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const AttentionSequence& seq = sequences[s];
    if (seq.num_rows <= 0) continue;
    KVSERVE_CHECK_MSG(seq.start_pos >= 0 && seq.first_row >= 0, "attention: bad sequence");
    const int64_t context = seq.start_pos + seq.num_rows;
    const int64_t pages = (context + page_size - 1) / page_size;
    KVSERVE_CHECK_MSG(static_cast<int64_t>(seq.page_table.size()) >= pages,
                      "attention: page table shorter than the context");
    for (int64_t p = 0; p < pages; ++p) {
      KVSERVE_CHECK_MSG(seq.page_table[p] >= 0 && seq.page_table[p] < pool_shape.num_pages,
                        "attention: page id out of range");
    }
    max_context = std::max(max_context, context);
    for (int64_t begin = 0; begin < seq.num_rows; begin += rows_per_item) {
      const int64_t end = std::min(seq.num_rows, begin + rows_per_item);
      max_queries = std::max(max_queries, (end - begin) * group);
      const int64_t cost = (end - begin) * group * (seq.start_pos + end) * shape.head_dim * 2;
      for (int h = 0; h < shape.num_kv_heads; ++h) {
        items.push_back({static_cast<int32_t>(s), h, begin, end, cost});
        total_cost += cost;
      }
    }
  }
  if (items.empty()) return;
  // Largest first, so the dynamic schedule ends with small items and threads finish together.
  std::stable_sort(
      items.begin(), items.end(),
      [](const AttentionWorkItem& a, const AttentionWorkItem& b) { return a.cost > b.cost; });

  const AttentionContext ctx{&pool, layer, shape, sequences.data(), q, out};
  const AttendFn attend = SelectAttend();
  const int64_t num_items = static_cast<int64_t>(items.size());
  const bool parallel = num_items > 1 && total_cost >= kParallelWork;
  const size_t scores_size = static_cast<size_t>(max_queries * max_context);
  const size_t acc_size = static_cast<size_t>(max_queries * shape.head_dim);
  const size_t block_size =
      pool_shape.dtype != KvDType::kF32 ? static_cast<size_t>(page_size) * shape.head_dim : 0;

#pragma omp parallel if (parallel)
  {
    // Uninitialised on purpose: every score and accumulator is written before it is read.
    const auto buffer =
        std::make_unique_for_overwrite<float[]>(scores_size + acc_size + max_queries + block_size);
    const AttentionScratch scratch{buffer.get(), buffer.get() + scores_size,
                                   buffer.get() + scores_size + acc_size,
                                   buffer.get() + scores_size + acc_size + max_queries};
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_items; ++i) attend(ctx, items[i], scratch);
  }
}

}  // namespace kvserve::engine
