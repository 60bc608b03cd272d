#include "serving/output_channel.h"

namespace kvserve::serving {

void OutputChannel::Push(RequestOutput output) {
  std::function<void()> notify;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = output.finished;
    queue_.push_back(std::move(output));
    notify = notify_;
  }
  // Outside the lock so the notifier may TryPop.
  if (notify) notify();
}

bool OutputChannel::Pop(RequestOutput* output, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
  if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline)) return false;
  *output = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

bool OutputChannel::TryPop(RequestOutput* output) {
  absl::MutexLock lock(&mu_);
  if (queue_.empty()) return false;
  *output = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

void OutputChannel::SetNotifier(std::function<void()> notify) {
  bool pending;
  {
    absl::MutexLock lock(&mu_);
    notify_ = notify;
    pending = !queue_.empty();
  }
  if (notify && pending) notify();
}

bool OutputChannel::finished_pushed() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

}  // namespace kvserve::serving
