// StackGuard: how much of the current thread's stack is left, so that a recursive walk of
// untrusted input (JSON, Jinja templates, model metadata) stops with an error before it
// overflows the stack, whatever thread it runs on. Stacks differ by thread: the main thread has
// 8 MiB, a small thread (the HTTP server's threads once had about 100 KiB) much less, a
// sanitizer build's frames are several times larger. A fixed depth limit alone cannot fit them all; a depth limit derived from the stack
// that is really left does.
//
// Thread-safety: every function is thread-safe; the stack bounds are read once per thread.
#ifndef KVSERVE_BASE_STACK_GUARD_H_
#define KVSERVE_BASE_STACK_GUARD_H_

#include <cstddef>

namespace kvserve::base {

// Bytes between the caller's frame and the low end of this thread's stack. Where the bounds
// cannot be read, a large number (nothing is refused).
size_t StackBytesLeft();

// What a recursive walk keeps free for the calls it makes below its last depth check (string
// formatting, allocation, a leaf's own frame). Larger under sanitizers, whose frames are larger.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr size_t kStackReserveBytes = 96 * 1024;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr size_t kStackReserveBytes = 96 * 1024;
#else
inline constexpr size_t kStackReserveBytes = 32 * 1024;
#endif
#else
inline constexpr size_t kStackReserveBytes = 32 * 1024;
#endif

// True when a recursive walk may go one level deeper on this thread.
inline bool StackHasRoom() { return StackBytesLeft() > kStackReserveBytes; }

}  // namespace kvserve::base

#endif  // KVSERVE_BASE_STACK_GUARD_H_
