#include "engine/step_profile.h"

namespace kvserve::engine {

std::atomic<bool> StepProfile::enabled_{false};
std::array<std::atomic<int64_t>, kNumStepPhases> StepProfile::phase_ns_{};
std::atomic<int64_t> StepProfile::step_ns_{0};
std::atomic<int64_t> StepProfile::steps_{0};

std::string_view StepPhaseName(StepPhase phase) {
  switch (phase) {
    case StepPhase::kMatmul:
      return "matmul";
    case StepPhase::kAttention:
      return "attention";
    case StepPhase::kElementwise:
      return "elementwise";
    case StepPhase::kLmHead:
      return "lm_head";
    case StepPhase::kSampling:
      return "sampling";
    case StepPhase::kSchedule:
      return "schedule";
    case StepPhase::kCopy:
      return "copy";
    case StepPhase::kOther:
      return "other";
  }
  return "unknown";
}

void StepProfile::Reset() {
  for (std::atomic<int64_t>& ns : phase_ns_) ns.store(0, std::memory_order_relaxed);
  step_ns_.store(0, std::memory_order_relaxed);
  steps_.store(0, std::memory_order_relaxed);
}

StepProfileSnapshot StepProfile::Read() {
  StepProfileSnapshot s;
  for (int i = 0; i < kNumStepPhases; ++i) {
    s.phase_ns[i] = phase_ns_[i].load(std::memory_order_relaxed);
  }
  s.step_ns = step_ns_.load(std::memory_order_relaxed);
  s.steps = steps_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace kvserve::engine
