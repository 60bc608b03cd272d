// WorkerPool: a few threads with full-size stacks for work that must not run where it was
// asked for: parsing a request body, rendering a chat template and tokenizing a prompt are walks
// over untrusted input that need stack (they are guarded against running out, see
// base/stack_guard.h, but a guard only turns a crash into an error) and take CPU time that an
// event loop cannot spend. The HTTP server's handlers therefore Post() each generation's
// preparation here and carry on.
//
// Ownership: owns its threads; the destructor finishes queued work, then joins them.
// Thread-safety: Run() may be called from any number of threads at once.
#ifndef KVSERVE_SERVER_FRONTEND_WORKER_POOL_H_
#define KVSERVE_SERVER_FRONTEND_WORKER_POOL_H_

#include <pthread.h>

#include <cstddef>
#include <deque>
#include <utility>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace kvserve::server {

class WorkerPool {
 public:
  static constexpr size_t kStackBytes = 8 << 20;

  // `num_threads` >= 1 threads, each with a kStackBytes stack.
  explicit WorkerPool(int num_threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `work` on one of the pool's threads and returns when it has finished. Work waits in a
  // queue while every thread is busy.
  void Run(absl::FunctionRef<void()> work);
  // Queues `work` for one of the pool's threads and returns at once.
  void Post(std::function<void()> work);

  // Bytes of stack the calling thread has left (see base/stack_guard.h); for tests.
  static size_t CallerStackBytesLeft();

 private:
  static void* ThreadMain(void* pool);
  void Loop();
  bool HasWorkOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<pthread_t> threads_;
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_WORKER_POOL_H_
