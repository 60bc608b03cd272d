// Read bandwidth of this machine: every thread sums its share of a buffer much larger than the
// caches with 32-byte loads (as a weight-streaming matmul reads), best of several passes.
// Prints one JSON line per thread count. Usage: kvserve_bandwidth_probe [--mb=1024] [--reps=8]
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

__attribute__((target("avx2"))) int64_t SumRange(const uint8_t* p, int64_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 128 <= bytes; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  int64_t out[4];
  std::memcpy(out, &s, sizeof(out));
  return out[0] + out[1] + out[2] + out[3];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t mb = 1024;
  int reps = 8;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--mb=", 5) == 0) mb = std::atoll(argv[i] + 5);
    if (std::strncmp(argv[i], "--reps=", 7) == 0) reps = std::atoi(argv[i] + 7);
  }
  const int64_t bytes = mb << 20;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
  for (int64_t i = 0; i < bytes; i += 4096) buf[i] = static_cast<uint8_t>(i);
  std::memset(buf, 1, bytes);
  const int max_threads = omp_get_max_threads();
  for (int threads = 1; threads <= max_threads; ++threads) {
    double best = 1e30;
    int64_t sink = 0;
    for (int r = 0; r < reps; ++r) {
      const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
      {
        const int t = omp_get_thread_num();
        const int64_t share = bytes / threads / 128 * 128;
        sink += SumRange(buf + t * share, share);
      }
      best = std::min(
          best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("{\"threads\": %d, \"mb\": %ld, \"read_gb_per_s\": %.1f, \"sink\": %ld}\n", threads,
                static_cast<long>(mb), bytes / best / 1e9, static_cast<long>(sink % 7));
  }
  std::free(buf);
  return 0;
}
