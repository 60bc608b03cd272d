#include "engine/attention.h"

#include <omp.h>

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
  int chunk;        // keys per softmax chunk: a multiple of the page size
  float* partials;  // split items' per-chunk (max, sum, acc[head_dim]) records
};

// Rows [row_begin, row_end) (relative to the sequence's first row) of one sequence, for the
// query heads sharing KV head `kv_head`, over key chunks [chunk_begin, chunk_end). Items write
// disjoint parts of `out` (or, split, of `partials` from record `partial` on).
struct AttentionWorkItem {
  int32_t sequence;
  int32_t kv_head;
  int64_t row_begin;
  int64_t row_end;
  int64_t chunk_begin;
  int64_t chunk_end;
  int64_t partial;  // -1: the item owns all its rows' chunks and writes `out`
  int64_t cost;     // multiply-adds, roughly: for ordering big items first
};

// A one-row sequence whose chunks ran as separate items, for one KV head: MergeSplit folds
// its num_chunks x group records from `partial` on.
struct AttentionSplit {
  int32_t sequence;
  int32_t kv_head;
  int64_t num_chunks;
  int64_t partial;
};

// Per-thread buffers, sized for the largest item of the call (queries = its query vectors).
struct AttentionScratch {
  float* scores;     // [queries][chunk]
  float* acc;        // [queries][head_dim]: running softmax-weighted sum of V
  float* acc_chunk;  // [queries][head_dim]: this chunk's
  float* run_max;    // [queries]
  float* run_sum;    // [queries]
  float* chunk_max;  // [queries]
  float* chunk_sum;  // [queries]
  float* block;      // one K or V block widened to f32: [page_size][head_dim]
};

}  // namespace

#define KVSERVE_SIMD_BODY "engine/attention_simd.inc"
#include "engine/simd_instantiate.inc"

namespace {

using AttendFn = void (*)(const AttentionContext&, const AttentionWorkItem&,
                          const AttentionScratch&);
using MergeFn = void (*)(const AttentionContext&, const AttentionSplit&, float*);

struct AttendFns {
  AttendFn attend;
  MergeFn merge;
};

AttendFns SelectAttend() {
  switch (internal::ActiveIsa()) {
    case internal::Isa::kAvx512:
      return {simd_avx512::AttendItem, simd_avx512::MergeSplit};
    case internal::Isa::kAvx2:
      return {simd_avx2::AttendItem, simd_avx2::MergeSplit};
    case internal::Isa::kScalar:
      break;
  }
  return {simd_scalar::AttendItem, simd_scalar::MergeSplit};
}

// Query vectors per work item. Each K/V block an item loads is reused by all its queries while
// it sits in L1, so more is better for reuse, but fewer gives more items to share between
// threads in a single long prefill.
constexpr int kQueriesPerItem = 32;

// Keys per softmax chunk (rounded to whole pages). Chunks start at fixed multiples of it, so a
// row's arithmetic never depends on the batch, the prompt's chunking or the threads; 256 keys
// of scores per query stay in L1.
constexpr int kChunkKeys = 256;

// Below this many multiply-adds in the whole call, run on the calling thread.
constexpr int64_t kParallelWork = 1 << 16;

// Splits the chunks of one-row sequences into one item per chunk (flash-decoding) when an item
// would take more than its share of the threads' work, so one long decode uses every core.
// Which items split changes no result: the chunks fold in the same order either way.
void SplitLongDecodes(absl::Span<const AttentionSequence> sequences, int group, int64_t total_cost,
                      std::vector<AttentionWorkItem>& items, std::vector<AttentionSplit>& splits,
                      int64_t* num_records) {
  const int threads = omp_get_max_threads();
  if (threads < 2) return;
  const int64_t share = total_cost / (2 * threads);
  std::vector<AttentionWorkItem> out;
  for (const AttentionWorkItem& item : items) {
    const int64_t chunks = item.chunk_end - item.chunk_begin;
    if (sequences[item.sequence].num_rows != 1 || chunks < 2 || item.cost <= share) {
      out.push_back(item);
      continue;
    }
    splits.push_back({item.sequence, item.kv_head, chunks, *num_records});
    for (int64_t c = 0; c < chunks; ++c) {
      AttentionWorkItem piece = item;
      piece.chunk_begin = c;
      piece.chunk_end = c + 1;
      piece.partial = *num_records + c * group;
      piece.cost = item.cost / chunks;
      out.push_back(piece);
    }
    *num_records += chunks * group;
  }
  items.swap(out);
}

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
  const int chunk = std::max(1, kChunkKeys / page_size) * page_size;
  const int64_t rows_per_item = std::max(1, kQueriesPerItem / group);

  std::vector<AttentionWorkItem> items;
  int64_t max_queries = 0, total_cost = 0;
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
    for (int64_t begin = 0; begin < seq.num_rows; begin += rows_per_item) {
      const int64_t end = std::min(seq.num_rows, begin + rows_per_item);
      max_queries = std::max(max_queries, (end - begin) * group);
      const int64_t keys = seq.start_pos + end;
      const int64_t cost = (end - begin) * group * keys * shape.head_dim * 2;
      for (int h = 0; h < shape.num_kv_heads; ++h) {
        items.push_back(
            {static_cast<int32_t>(s), h, begin, end, 0, (keys + chunk - 1) / chunk, -1, cost});
        total_cost += cost;
      }
    }
  }
  if (items.empty()) return;
  std::vector<AttentionSplit> splits;
  int64_t num_records = 0;
  SplitLongDecodes(sequences, group, total_cost, items, splits, &num_records);
  // Largest first, so the dynamic schedule ends with small items and threads finish together.
  std::stable_sort(
      items.begin(), items.end(),
      [](const AttentionWorkItem& a, const AttentionWorkItem& b) { return a.cost > b.cost; });

  std::vector<float> partials(static_cast<size_t>(num_records) * (shape.head_dim + 2));
  const AttentionContext ctx{&pool, layer, shape, sequences.data(), q, out, chunk, partials.data()};
  const AttendFns fns = SelectAttend();
  const int64_t num_items = static_cast<int64_t>(items.size());
  const bool parallel = num_items > 1 && total_cost >= kParallelWork;
  const size_t scores_size = static_cast<size_t>(max_queries * chunk);
  const size_t acc_size = static_cast<size_t>(max_queries * shape.head_dim);
  const size_t block_size =
      pool_shape.dtype != KvDType::kF32 ? static_cast<size_t>(page_size) * shape.head_dim : 0;
  const size_t total = scores_size + 2 * acc_size + 4 * max_queries + block_size;

#pragma omp parallel if (parallel)
  {
    // Uninitialised on purpose: every score and accumulator is written before it is read.
    const auto buffer = std::make_unique_for_overwrite<float[]>(total);
    float* p = buffer.get();
    AttentionScratch scratch;
    scratch.scores = p;
    scratch.acc = (p += scores_size);
    scratch.acc_chunk = (p += acc_size);
    scratch.run_max = (p += acc_size);
    scratch.run_sum = (p += max_queries);
    scratch.chunk_max = (p += max_queries);
    scratch.chunk_sum = (p += max_queries);
    scratch.block = (p += max_queries);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_items; ++i) fns.attend(ctx, items[i], scratch);
      // The implicit barrier above: every partial is written before any merge reads it.
#pragma omp for schedule(static)
    for (int64_t i = 0; i < static_cast<int64_t>(splits.size()); ++i) {
      fns.merge(ctx, splits[i], scratch.acc);
    }
  }
}

}  // namespace kvserve::engine
