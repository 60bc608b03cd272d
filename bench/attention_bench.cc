// PagedAttention micro-benchmark. A "step" is 32 calls (one per layer), the attention work of one
// decoding step of a 32-layer model with 15 query heads / 5 KV heads of dim 64 (SmolLM-360M-like).
//
//   build/bench/kvserve_attention_bench [--benchmark_filter=...]
//
// Arguments: ISA (0 scalar, 1 AVX2, 2 AVX-512; skipped when the CPU lacks it), KV dtype
// (0 f32, 1 bf16), OpenMP threads.
#include <omp.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/attention.h"
#include "engine/kv_page_pool.h"
#include "engine/simd_internal.h"

namespace kvserve::engine {
namespace {

constexpr int kLayers = 32;
constexpr int kHeads = 15;
constexpr int kKvHeads = 5;
constexpr int kHeadDim = 64;
constexpr int kPageSize = 16;

struct Setup {
  std::unique_ptr<KvPagePool> pool;
  std::vector<std::vector<int32_t>> page_tables;
  std::vector<AttentionSequence> sequences;
  std::vector<float> q, out;
};

// `num_seqs` sequences whose queries are rows start_pos .. start_pos + rows - 1 of a context of
// start_pos + rows tokens, pages interleaved across sequences as after a while of serving.
Setup MakeSetup(int num_seqs, int start_pos, int rows, KvDType dtype) {
  Setup s;
  const int context = start_pos + rows;
  const int pages_per_seq = (context + kPageSize - 1) / kPageSize;
  s.pool = *KvPagePool::Create({.num_layers = kLayers,
                                .num_kv_heads = kKvHeads,
                                .head_dim = kHeadDim,
                                .page_size = kPageSize,
                                .num_pages = num_seqs * pages_per_seq,
                                .dtype = dtype});
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> kv(static_cast<size_t>(context) * kKvHeads * kHeadDim);
  for (float& x : kv) x = dist(rng);
  std::vector<int32_t> positions(context);
  for (int p = 0; p < context; ++p) positions[p] = p;
  for (int i = 0; i < num_seqs; ++i) {
    std::vector<int32_t> table(pages_per_seq);
    for (int p = 0; p < pages_per_seq; ++p) table[p] = p * num_seqs + i;  // interleaved
    for (int l = 0; l < kLayers; ++l) {
      s.pool->Write(l, table, positions.data(), context, kv.data(), kv.data());
    }
    s.page_tables.push_back(std::move(table));
  }
  for (int i = 0; i < num_seqs; ++i) {
    s.sequences.push_back({.first_row = static_cast<int64_t>(i) * rows,
                           .num_rows = rows,
                           .start_pos = start_pos,
                           .page_table = s.page_tables[i]});
  }
  s.q.resize(static_cast<size_t>(num_seqs) * rows * kHeads * kHeadDim);
  for (float& x : s.q) x = dist(rng);
  s.out.resize(s.q.size());
  return s;
}

bool Configure(benchmark::State& state) {
  const auto isa = static_cast<internal::Isa>(state.range(0));
  if (!internal::SetIsaForTesting(isa)) {
    state.SkipWithError("ISA not available on this CPU");
    return false;
  }
  omp_set_num_threads(static_cast<int>(state.range(2)));
  state.SetLabel(std::string(internal::IsaName(isa)) + (state.range(1) ? " bf16" : " f32"));
  return true;
}

void RunSteps(benchmark::State& state, Setup& s) {
  const AttentionShape shape{.num_heads = kHeads,
                             .num_kv_heads = kKvHeads,
                             .head_dim = kHeadDim,
                             .scale = 1.f / std::sqrt(static_cast<float>(kHeadDim))};
  for (auto _ : state) {
    for (int l = 0; l < kLayers; ++l) {
      PagedAttention(*s.pool, l, shape, s.sequences, s.q.data(), s.out.data());
    }
    benchmark::DoNotOptimize(s.out.data());
    benchmark::ClobberMemory();
  }
  internal::ResetIsaForTesting();
}

// Decode: 32 sequences x 1 new token, context 80.
void BM_DecodeStep32x80(benchmark::State& state) {
  if (!Configure(state)) return;
  Setup s = MakeSetup(32, 79, 1, state.range(1) ? KvDType::kBF16 : KvDType::kF32);
  RunSteps(state, s);
  state.counters["tokens/s"] =
      benchmark::Counter(32.0 * state.iterations(), benchmark::Counter::kIsRate);
}

// Prefill: one sequence, a 512-token prompt.
void BM_PrefillStep1x512(benchmark::State& state) {
  if (!Configure(state)) return;
  Setup s = MakeSetup(1, 0, 512, state.range(1) ? KvDType::kBF16 : KvDType::kF32);
  RunSteps(state, s);
  state.counters["tokens/s"] =
      benchmark::Counter(512.0 * state.iterations(), benchmark::Counter::kIsRate);
}

void Args(benchmark::internal::Benchmark* b) {
  for (int isa : {0, 1, 2})
    for (int dtype : {0, 1})
      for (int threads : {1, 2}) b->Args({isa, dtype, threads});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_DecodeStep32x80)->Apply(Args);
BENCHMARK(BM_PrefillStep1x512)->Apply(Args);

}  // namespace
}  // namespace kvserve::engine

BENCHMARK_MAIN();
