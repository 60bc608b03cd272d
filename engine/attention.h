// Causal attention of a batch of query tokens against their own sequences' paged K/V.
//
// Grouped-query aware: a work item is (sequence, KV head, up to 32 query vectors), so each K/V
// page is read once for all the query heads that share it. Keys are taken in chunks of 256
// (whole pages) at fixed positions with an online softmax (flash-attention style), so scratch
// memory is a chunk of scores per query whatever the context, and a row's arithmetic depends on
// nothing but its own sequence: not the batch, the prompt's chunking or the thread count. A long
// one-row (decoding) sequence that would hold one thread alone is split into one item per chunk
// and the partial softmaxes merged in chunk order afterwards (flash-decoding): same bits.
// K/V dtypes f32, bf16, f16, q8_0 (widened exactly to f32 a page block at a time); the dot
// products run on the ISA of simd_internal.h (scalar, AVX2, AVX-512).
//
// Thread-safety: reads the pool, writes only `out`; parallelises internally with OpenMP.
#ifndef KVSERVE_ENGINE_ATTENTION_H_
#define KVSERVE_ENGINE_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/kv_page_pool.h"

namespace kvserve::engine {

// The query tokens of one sequence within a batch: rows [first_row, first_row + num_rows) of
// the query matrix, at positions start_pos .. start_pos + num_rows - 1. Keys/values for
// positions 0 .. start_pos + num_rows - 1 must already be in the pool (written for this layer).
struct AttentionSequence {
  int64_t first_row = 0;
  int64_t num_rows = 0;
  int32_t start_pos = 0;
  absl::Span<const int32_t> page_table;
};

struct AttentionShape {
  int num_heads = 0;
  int num_kv_heads = 0;  // num_heads % num_kv_heads == 0 (grouped-query attention)
  int head_dim = 0;
  float scale = 0.f;  // usually 1/sqrt(head_dim)
};

// q: [total_rows, num_heads * head_dim]; out: same shape. Row i of a sequence attends to
// positions 0 .. start_pos + i (causal). Query head h uses KV head h / (num_heads / num_kv_heads).
void PagedAttention(const KvPagePool& pool, int layer, const AttentionShape& shape,
                    absl::Span<const AttentionSequence> sequences, const float* q, float* out);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_ATTENTION_H_
