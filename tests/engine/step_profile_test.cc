#include "engine/step_profile.h"

#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

constexpr int64_t kMs = 1000 * 1000;

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

class StepProfileTest : public ::testing::Test {
 protected:
  void SetUp() override { StepProfile::Reset(); }
  void TearDown() override {
    StepProfile::SetEnabled(false);
    StepProfile::Reset();
  }
};

TEST_F(StepProfileTest, DisabledTimerRecordsNothing) {
  ASSERT_FALSE(StepProfile::enabled());  // the default
  PhaseTimer timer;
  SleepMs(2);
  timer.Lap(StepPhase::kMatmul);
  timer.EndStep();
  const StepProfileSnapshot s = StepProfile::Read();
  EXPECT_EQ(s.steps, 0);
  EXPECT_EQ(s.step_ns, 0);
  for (int64_t ns : s.phase_ns) EXPECT_EQ(ns, 0);
}

TEST_F(StepProfileTest, LapsGoToTheirPhaseAndSkipDropsTime) {
  StepProfile::SetEnabled(true);
  PhaseTimer timer;
  SleepMs(20);
  timer.Lap(StepPhase::kMatmul);
  SleepMs(5);
  timer.Skip();  // not attributed to any phase
  SleepMs(10);
  timer.Lap(StepPhase::kSampling);
  timer.EndStep();
  const StepProfileSnapshot s = StepProfile::Read();
  const int64_t matmul = s.phase_ns[static_cast<int>(StepPhase::kMatmul)];
  const int64_t sampling = s.phase_ns[static_cast<int>(StepPhase::kSampling)];
  // Sleeps last at least as long as asked; the upper bounds are loose for busy machines.
  EXPECT_GE(matmul, 20 * kMs);
  EXPECT_LT(matmul, 20 * kMs + 500 * kMs);
  EXPECT_GE(sampling, 10 * kMs);
  EXPECT_LT(sampling, 10 * kMs + 500 * kMs);
  EXPECT_EQ(s.phase_ns[static_cast<int>(StepPhase::kAttention)], 0);
  EXPECT_EQ(s.steps, 1);
  // The step covers both laps and the skipped 5 ms.
  EXPECT_GE(s.step_ns, matmul + sampling + 5 * kMs);
}

TEST_F(StepProfileTest, TimerKeepsTheFlagItWasBuiltWith) {
  StepProfile::SetEnabled(true);
  PhaseTimer on;
  StepProfile::SetEnabled(false);
  PhaseTimer off;
  SleepMs(1);
  on.Lap(StepPhase::kCopy);
  off.Lap(StepPhase::kCopy);
  on.EndStep();
  off.EndStep();
  const StepProfileSnapshot s = StepProfile::Read();
  EXPECT_GE(s.phase_ns[static_cast<int>(StepPhase::kCopy)], 1 * kMs);
  EXPECT_EQ(s.steps, 1);
}

TEST_F(StepProfileTest, ResetClearsAndNamesAreDistinct) {
  StepProfile::SetEnabled(true);
  PhaseTimer timer;
  timer.Lap(StepPhase::kOther);
  timer.EndStep();
  StepProfile::Reset();
  const StepProfileSnapshot s = StepProfile::Read();
  EXPECT_EQ(s.steps, 0);
  EXPECT_EQ(s.step_ns, 0);
  EXPECT_EQ(StepPhaseName(StepPhase::kMatmul), "matmul");
  EXPECT_EQ(StepPhaseName(StepPhase::kLmHead), "lm_head");
  EXPECT_NE(StepPhaseName(StepPhase::kCopy), StepPhaseName(StepPhase::kOther));
}

}  // namespace
}  // namespace kvserve::engine
