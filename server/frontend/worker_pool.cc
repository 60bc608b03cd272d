#include "server/frontend/worker_pool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "base/log.h"
#include "base/stack_guard.h"

namespace kvserve::server {

WorkerPool::WorkerPool(int num_threads) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackBytes);
  for (int i = 0; i < std::max(1, num_threads); ++i) {
    pthread_t thread;
    if (const int err = pthread_create(&thread, &attr, &WorkerPool::ThreadMain, this); err != 0) {
      base::Log(absl::StrCat("cannot start a worker thread: ", std::strerror(err)));
      std::abort();
    }
    threads_.push_back(thread);
  }
  pthread_attr_destroy(&attr);
}

WorkerPool::~WorkerPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (pthread_t thread : threads_) pthread_join(thread, nullptr);
}

void WorkerPool::Run(absl::FunctionRef<void()> work) {
  absl::Notification done;
  Post([&work, &done] {
    work();
    done.Notify();
  });
  done.WaitForNotification();
}

void WorkerPool::Post(std::function<void()> work) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(work));
}

size_t WorkerPool::CallerStackBytesLeft() { return base::StackBytesLeft(); }

void* WorkerPool::ThreadMain(void* pool) {
  static_cast<WorkerPool*>(pool)->Loop();
  return nullptr;
}

void WorkerPool::Loop() {
  while (true) {
    std::function<void()> work;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &WorkerPool::HasWorkOrStopping));
      if (queue_.empty()) return;  // stopping, and nothing left to do
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work();
  }
}

}  // namespace kvserve::server
