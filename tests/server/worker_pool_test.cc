// WorkerPool: Run() from many threads at once returns only after the work ran, on a pool thread
// with a full-size stack; the destructor finishes queued work. Threaded on purpose:
// scripts/tsan.sh runs it under ThreadSanitizer (Run's hand-back is what makes the callers'
// plain counters below race-free).
#include "server/frontend/worker_pool.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace kvserve::server {
namespace {

TEST(WorkerPoolTest, RunFromManyThreadsReturnsAfterTheWorkRanOnAPoolThread) {
  WorkerPool pool(2);
  constexpr int kCallers = 6;
  constexpr int kRuns = 50;
  std::vector<int> counts(kCallers, 0);  // each caller's own, not atomic
  std::vector<size_t> min_stack(kCallers, WorkerPool::kStackBytes);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < kRuns; ++i) {
        pool.Run([&] {
          ++counts[c];
          min_stack[c] = std::min(min_stack[c], WorkerPool::CallerStackBytesLeft());
        });
        EXPECT_EQ(counts[c], i + 1);  // the work finished before Run returned
      }
    });
  }
  for (std::thread& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) {
    EXPECT_EQ(counts[c], kRuns);
    EXPECT_GT(min_stack[c], WorkerPool::kStackBytes / 2) << "not on a full-size pool stack";
  }
}

TEST(WorkerPoolTest, DestructorFinishesQueuedWork) {
  std::atomic<int> done{0};
  {
    WorkerPool pool(2);
    for (int i = 0; i < 200; ++i) pool.Post([&done] { done.fetch_add(1); });
  }
  EXPECT_EQ(done.load(), 200);
}

}  // namespace
}  // namespace kvserve::server
