// StepProfile: where an engine step's time goes, for benchmarks.
//
// A handful of fixed phases (matmuls, attention, element-wise kernels, LM head, sampling,
// scheduling, copies) accumulate steady_clock time across steps. Profiling is off by default and
// switched on at run time (a benchmark calls StepProfile::SetEnabled(true) before starting the
// engine). When off, each hook costs one predictable branch: PhaseTimer reads the flag once at
// construction and does nothing else.
//
// Usage inside a step (one PhaseTimer per function, laps attribute the time since the previous
// lap to a phase):
//   PhaseTimer timer;
//   RmsNorm(...);        timer.Lap(StepPhase::kElementwise);
//   linear->Forward(...); timer.Lap(StepPhase::kMatmul);
//   model->Forward(...); timer.Skip();  // the callee attributed its own time
//
// Ownership: the accumulators are process-wide. Thread-safety: the counters are atomics, so laps
// from any thread are safe; the figures are meant to be read (Read) after the work being measured
// has finished, and Reset between runs.
#ifndef KVSERVE_ENGINE_STEP_PROFILE_H_
#define KVSERVE_ENGINE_STEP_PROFILE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace kvserve::engine {

enum class StepPhase {
  kMatmul,       // the transformer layers' oneDNN matmuls (QKV, output, gate/up, down)
  kAttention,    // paged attention of queries against cached keys/values
  kElementwise,  // RMSNorm, RoPE, SwiGLU, residual adds
  kLmHead,       // the final projection to vocabulary logits
  kSampling,     // turning logits into tokens (sampler, its state updates)
  kSchedule,     // Schedule/Update, request bookkeeping, plan -> batch, publishing outputs
  kCopy,         // embedding lookup, Q/K/V split, KV page writes, logit-row selection
  kOther,        // batch validation and scratch-buffer growth
};
inline constexpr int kNumStepPhases = 8;

std::string_view StepPhaseName(StepPhase phase);

struct StepProfileSnapshot {
  std::array<int64_t, kNumStepPhases> phase_ns{};
  int64_t steps = 0;
  int64_t step_ns = 0;  // whole steps (engine loop), including time no phase claimed
};

class StepProfile {
 public:
  static bool enabled() { return enabled_.load(std::memory_order_relaxed); }
  static void SetEnabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }
  static void Reset();
  static StepProfileSnapshot Read();

  static void Add(StepPhase phase, int64_t ns) {
    phase_ns_[static_cast<int>(phase)].fetch_add(ns, std::memory_order_relaxed);
  }
  static void AddStep(int64_t ns) {
    step_ns_.fetch_add(ns, std::memory_order_relaxed);
    steps_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  static std::atomic<bool> enabled_;
  static std::array<std::atomic<int64_t>, kNumStepPhases> phase_ns_;
  static std::atomic<int64_t> step_ns_;
  static std::atomic<int64_t> steps_;
};

// Lap timer over one function's work; a no-op unless profiling was on at construction.
class PhaseTimer {
 public:
  using Clock = std::chrono::steady_clock;

  PhaseTimer() : on_(StepProfile::enabled()) {
    if (on_) start_ = last_ = Clock::now();
  }

  // Attributes the time since the previous lap (or construction) to `phase`.
  void Lap(StepPhase phase) {
    if (on_) {
      const Clock::time_point now = Clock::now();
      StepProfile::Add(phase, Ns(now - last_));
      last_ = now;
    }
  }
  // Restarts the lap without attributing the time (a callee timed itself).
  void Skip() {
    if (on_) last_ = Clock::now();
  }
  // Counts one whole step: the time since construction.
  void EndStep() {
    if (on_) StepProfile::AddStep(Ns(Clock::now() - start_));
  }

 private:
  static int64_t Ns(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
  const bool on_;
  Clock::time_point start_, last_;
};

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_STEP_PROFILE_H_
