// RunOnStack: runs a function on a new thread with a stack of the given size and waits for it,
// so tests can show that a walk of untrusted input fits small stacks (such as the 100 KiB of the
// HTTP workers kvserve once had) by returning an error instead of overflowing.
#ifndef KVSERVE_TESTS_BASE_SMALL_STACK_H_
#define KVSERVE_TESTS_BASE_SMALL_STACK_H_

#include <pthread.h>

#include <cstddef>
#include <functional>

#include "gtest/gtest.h"

namespace kvserve::testing {

inline void RunOnStack(size_t stack_bytes, std::function<void()> fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, stack_bytes), 0);
  pthread_t thread;
  auto trampoline = [](void* arg) -> void* {
    (*static_cast<std::function<void()>*>(arg))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, trampoline, &fn), 0);
  pthread_attr_destroy(&attr);
  pthread_join(thread, nullptr);
}

}  // namespace kvserve::testing

#endif  // KVSERVE_TESTS_BASE_SMALL_STACK_H_
