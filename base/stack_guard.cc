#include "base/stack_guard.h"

#include <pthread.h>

#include <cstdint>
#include <limits>

namespace kvserve::base {
namespace {

// The lowest usable address of this thread's stack (stacks grow down on x86-64), or 0 when
// pthread cannot tell.
uintptr_t ReadStackLow() {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
  void* addr = nullptr;
  size_t size = 0;
  size_t guard = 0;
  const bool ok = pthread_attr_getstack(&attr, &addr, &size) == 0;
  pthread_attr_getguardsize(&attr, &guard);
  pthread_attr_destroy(&attr);
  if (!ok || addr == nullptr) return 0;
  return reinterpret_cast<uintptr_t>(addr) + guard;
}

}  // namespace

size_t StackBytesLeft() {
  thread_local const uintptr_t low = ReadStackLow();
  // The frame address, not a local's: sanitizers may move locals to a heap "fake stack".
  const uintptr_t here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  if (low == 0 || here <= low) return low == 0 ? std::numeric_limits<size_t>::max() : 0;
  return here - low;
}

}  // namespace kvserve::base
