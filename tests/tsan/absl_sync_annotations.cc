// ThreadSanitizer annotations for Debian's (uninstrumented) Abseil synchronization, linked into
// every test binary of the TSan build (-DKVSERVE_TSAN=ON, scripts/tsan.sh) and nowhere else.
//
// Why: TSan sees synchronization only in instrumented code and in the libc/pthread calls it
// intercepts. absl::Mutex is neither: its lock word and futex live in libabsl_synchronization.so,
// built without -fsanitize=thread, so every field guarded by an absl::Mutex looks unsynchronized
// and TSan reports a false race on the first hand-over (EngineLoop::Submit vs the engine thread's
// Await, for example). Abseil built with TSan tells the tool about its locks itself
// (ABSL_TSAN_MUTEX_* in mutex.cc); this file does the same from outside: it defines the public
// absl::Mutex / CondVar / Notification functions in the executable, which the linker prefers to
// the shared library's, tells TSan what each one does to the lock (__tsan_mutex_* annotations,
// sanitizer/tsan_interface.h) and calls the real function (dlsym RTLD_NEXT).
//
// Between a pre_* and its post_* annotation TSan ignores memory accesses, as Abseil's own
// annotations do: a Condition evaluated inside the library (under the real lock) is not checked.
// Await / CondVar::Wait release and re-take the lock in exclusive (writer) mode; kvserve holds no
// absl::Mutex in reader mode while waiting.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

#define KVSERVE_STR2(x) #x
#define KVSERVE_STR(x) KVSERVE_STR2(x)

// The real function of libabsl_synchronization.so: `suffix` is its Itanium-mangled name after
// "_ZN4absl<len><inline namespace>" (or _ZNK for const members).
template <typename Fn>
Fn Real(const char* prefix, const char* suffix) {
  const std::string ns = KVSERVE_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(prefix) + "4absl" + std::to_string(ns.size()) + ns + suffix;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found in the Abseil library\n",
                 name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

#define REAL(type, prefix, suffix) static const auto real = Real<type>(prefix, suffix)

// Abseil calls its own public functions too (AwaitWithTimeout calls AwaitWithDeadline, Notify
// takes the notification's Mutex), and those calls land here as well: only the outermost call
// of a thread is annotated.
thread_local int depth = 0;
struct Nested {
  Nested() { ++depth; }
  ~Nested() { --depth; }
  Nested(const Nested&) = delete;
  Nested& operator=(const Nested&) = delete;
};

#define PASS_THROUGH_IF_NESTED(...)        \
  if (depth > 0) return real(__VA_ARGS__); \
  Nested nested

constexpr unsigned kWrite = 0;
constexpr unsigned kRead = __tsan_mutex_read_lock;

// The lock is released, something blocks in the library, and the lock is taken again.
template <typename F>
auto ReleaseAndRetake(absl::Mutex* mu, F wait) {
  __tsan_mutex_pre_unlock(mu, kWrite);
  auto result = wait();
  __tsan_mutex_post_unlock(mu, kWrite);
  __tsan_mutex_pre_lock(mu, kWrite);
  __tsan_mutex_post_lock(mu, kWrite, 0);
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  REAL(void (*)(Mutex*), "_ZN", "5MutexD2Ev");
  __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::Lock() {
  REAL(void (*)(Mutex*), "_ZN", "5Mutex4LockEv");
  PASS_THROUGH_IF_NESTED(this);
  __tsan_mutex_pre_lock(this, kWrite);
  real(this);
  __tsan_mutex_post_lock(this, kWrite, 0);
}

void Mutex::ReaderLock() {
  REAL(void (*)(Mutex*), "_ZN", "5Mutex10ReaderLockEv");
  PASS_THROUGH_IF_NESTED(this);
  __tsan_mutex_pre_lock(this, kRead);
  real(this);
  __tsan_mutex_post_lock(this, kRead, 0);
}

void Mutex::Unlock() {
  REAL(void (*)(Mutex*), "_ZN", "5Mutex6UnlockEv");
  PASS_THROUGH_IF_NESTED(this);
  __tsan_mutex_pre_unlock(this, kWrite);
  real(this);
  __tsan_mutex_post_unlock(this, kWrite);
}

void Mutex::ReaderUnlock() {
  REAL(void (*)(Mutex*), "_ZN", "5Mutex12ReaderUnlockEv");
  PASS_THROUGH_IF_NESTED(this);
  __tsan_mutex_pre_unlock(this, kRead);
  real(this);
  __tsan_mutex_post_unlock(this, kRead);
}

bool Mutex::TryLock() {
  REAL(bool (*)(Mutex*), "_ZN", "5Mutex7TryLockEv");
  PASS_THROUGH_IF_NESTED(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed),
                         0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  REAL(bool (*)(Mutex*), "_ZN", "5Mutex13ReaderTryLockEv");
  PASS_THROUGH_IF_NESTED(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, __tsan_mutex_try_read_lock | (locked ? 0 : __tsan_mutex_try_read_lock_failed), 0);
  return locked;
}

// LockWhen*: always return holding the lock (the result says whether the condition holds).
void Mutex::LockWhen(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition&), "_ZN", "5Mutex8LockWhenERKNS0_9ConditionE");
  PASS_THROUGH_IF_NESTED(this, cond);
  __tsan_mutex_pre_lock(this, kWrite);
  real(this, cond);
  __tsan_mutex_post_lock(this, kWrite, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition&), "_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  PASS_THROUGH_IF_NESTED(this, cond);
  __tsan_mutex_pre_lock(this, kRead);
  real(this, cond);
  __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  REAL(bool (*)(Mutex*, const Condition&, Duration), "_ZN",
       "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  PASS_THROUGH_IF_NESTED(this, cond, timeout);
  __tsan_mutex_pre_lock(this, kWrite);
  const bool result = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, kWrite, 0);
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL(bool (*)(Mutex*, const Condition&, Time), "_ZN",
       "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  PASS_THROUGH_IF_NESTED(this, cond, deadline);
  __tsan_mutex_pre_lock(this, kWrite);
  const bool result = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, kWrite, 0);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  REAL(bool (*)(Mutex*, const Condition&, Duration), "_ZN",
       "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  PASS_THROUGH_IF_NESTED(this, cond, timeout);
  __tsan_mutex_pre_lock(this, kRead);
  const bool result = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, kRead, 0);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL(bool (*)(Mutex*, const Condition&, Time), "_ZN",
       "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  PASS_THROUGH_IF_NESTED(this, cond, deadline);
  __tsan_mutex_pre_lock(this, kRead);
  const bool result = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, kRead, 0);
  return result;
}

void Mutex::Await(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition&), "_ZN", "5Mutex5AwaitERKNS0_9ConditionE");
  PASS_THROUGH_IF_NESTED(this, cond);
  ReleaseAndRetake(this, [&] {
    real(this, cond);
    return 0;
  });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  REAL(bool (*)(Mutex*, const Condition&, Duration), "_ZN",
       "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  PASS_THROUGH_IF_NESTED(this, cond, timeout);
  return ReleaseAndRetake(this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  REAL(bool (*)(Mutex*, const Condition&, Time), "_ZN",
       "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  PASS_THROUGH_IF_NESTED(this, cond, deadline);
  return ReleaseAndRetake(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  REAL(void (*)(CondVar*, Mutex*), "_ZN", "7CondVar4WaitEPNS0_5MutexE");
  PASS_THROUGH_IF_NESTED(this, mu);
  ReleaseAndRetake(mu, [&] {
    real(this, mu);
    return 0;
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  REAL(bool (*)(CondVar*, Mutex*, Duration), "_ZN",
       "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  PASS_THROUGH_IF_NESTED(this, mu, timeout);
  return ReleaseAndRetake(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  REAL(bool (*)(CondVar*, Mutex*, Time), "_ZN",
       "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  PASS_THROUGH_IF_NESTED(this, mu, deadline);
  return ReleaseAndRetake(mu, [&] { return real(this, mu, deadline); });
}

// Notify happens before every wait that returns notified. (HasBeenNotified() is inline: its
// acquire load is instrumented, the library's release store is not; kvserve does not use it.)
void Notification::Notify() {
  REAL(void (*)(Notification*), "_ZN", "12Notification6NotifyEv");
  PASS_THROUGH_IF_NESTED(this);
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  REAL(void (*)(const Notification*), "_ZNK", "12Notification19WaitForNotificationEv");
  PASS_THROUGH_IF_NESTED(this);
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  REAL(bool (*)(const Notification*, Duration), "_ZNK",
       "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  PASS_THROUGH_IF_NESTED(this, timeout);
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  REAL(bool (*)(const Notification*, Time), "_ZNK",
       "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  PASS_THROUGH_IF_NESTED(this, deadline);
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
