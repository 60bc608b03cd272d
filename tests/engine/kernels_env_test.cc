// KVSERVE_DISABLE_AVX512=1 keeps the kernels off AVX-512. The variable is set by a static
// initializer, before main() and before any kernel reads it (it is read once).
#include <cstdlib>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/kernels.h"
#include "engine/simd_internal.h"
#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

const bool kEnvironmentSet = setenv("KVSERVE_DISABLE_AVX512", "1", 1) == 0;

TEST(KernelsEnvTest, DisableAvx512FallsBack) {
  ASSERT_TRUE(kEnvironmentSet);
  std::vector<float> x = {1.f, 2.f, 3.f};
  SoftmaxRows(x.data(), 1, 3);  // first kernel use
  EXPECT_NE(internal::ActiveIsa(), internal::Isa::kAvx512);
  EXPECT_EQ(internal::ActiveIsa(), internal::SelectIsa(CpuFeatures(), true, false));
  EXPECT_NEAR(x[2], 0.66524096f, 1e-6f);  // e^2 / (1 + e + e^2)
}

}  // namespace
}  // namespace kvserve::engine
