// Times the matmuls of one decoding step of a 360M-parameter Llama-shaped model (SmolLM-360M
// shapes: dim 960, 32 layers, 15 heads / 5 KV heads of 64, FFN 2560, vocab 32000) through
// engine::Linear, for several batch row counts m and weight dtypes. Weights are random: only
// the shapes matter for speed.
//
// Usage: kvserve_matmul_bench [--reps=N] [--dtype=f32|bf16|int8|all] [--m=1,8,32,64]
// Prints, per dtype and m: the median ms per step over N timed reps (after warm-up), the
// implied ceiling in tokens/s (m tokens per step, attention and everything else excluded), and
// the oneDNN implementation names used.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/primitives.h"

namespace kvserve::engine {
namespace {

constexpr int64_t kDim = 960;
constexpr int64_t kLayers = 32;
constexpr int64_t kHeads = 15;
constexpr int64_t kKvHeads = 5;
constexpr int64_t kHeadDim = 64;
constexpr int64_t kFfn = 2560;
constexpr int64_t kVocab = 32000;

struct LayerLinears {
  std::unique_ptr<Linear> qkv;      // dim -> (heads + 2 kv heads) * head_dim = 1600
  std::unique_ptr<Linear> o;        // dim -> dim
  std::unique_ptr<Linear> gate_up;  // dim -> 2 * ffn
  std::unique_ptr<Linear> down;     // ffn -> dim
};

struct Model {
  std::vector<LayerLinears> layers;
  std::unique_ptr<Linear> lm_head;
};

std::unique_ptr<Linear> MakeLinear(const std::vector<float>& random, int64_t out, int64_t in,
                                   WeightDType dtype) {
  absl::StatusOr<std::unique_ptr<Linear>> linear = Linear::Create(random.data(), out, in, dtype);
  if (!linear.ok()) {
    std::fprintf(stderr, "Linear [%ld, %ld] %s: %s\n", static_cast<long>(out),
                 static_cast<long>(in), std::string(WeightDTypeName(dtype)).c_str(),
                 linear.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(linear);
}

// Every Linear gets its own packed copy of (a prefix of) one random buffer, so each step reads
// all ~360M weights from memory, as a real model would.
std::unique_ptr<Model> BuildModel(WeightDType dtype, const std::vector<float>& random) {
  auto model = std::make_unique<Model>();
  const int64_t qkv_out = (kHeads + 2 * kKvHeads) * kHeadDim;
  for (int64_t l = 0; l < kLayers; ++l) {
    LayerLinears layer;
    if (!(layer.qkv = MakeLinear(random, qkv_out, kDim, dtype)) ||
        !(layer.o = MakeLinear(random, kDim, kDim, dtype)) ||
        !(layer.gate_up = MakeLinear(random, 2 * kFfn, kDim, dtype)) ||
        !(layer.down = MakeLinear(random, kDim, kFfn, dtype))) {
      return nullptr;
    }
    model->layers.push_back(std::move(layer));
  }
  model->lm_head = MakeLinear(random, kVocab, kDim, dtype);
  if (!model->lm_head) return nullptr;
  return model;
}

// All the step's matmuls for m rows. Inputs are fixed random activations; outputs are
// discarded (each Linear writes its own buffer region).
void RunStep(Model& model, int64_t m, const std::vector<float>& x, std::vector<float>& y) {
  for (LayerLinears& layer : model.layers) {
    layer.qkv->Forward(x.data(), m, y.data());
    layer.o->Forward(x.data(), m, y.data());
    layer.gate_up->Forward(x.data(), m, y.data());
    layer.down->Forward(x.data(), m, y.data());
  }
  model.lm_head->Forward(x.data(), m, y.data());
}

int Usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--reps=N] [--dtype=f32|bf16|int8|all] [--m=1,8,32,64]\n", argv0);
  return 2;
}

std::string ImplNames(const Model& model) {
  std::set<std::string> names;
  for (const LayerLinears& layer : model.layers) {
    for (const Linear* linear :
         {layer.qkv.get(), layer.o.get(), layer.gate_up.get(), layer.down.get()}) {
      names.emplace(linear->impl_name());
    }
  }
  names.emplace(model.lm_head->impl_name());
  return absl::StrJoin(names, ",");
}

int Main(int argc, char** argv) {
  int reps = 20;
  std::string dtype_flag = "all";
  std::vector<int64_t> row_counts = {1, 8, 32, 64};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--reps=")) {
      if (!absl::SimpleAtoi(arg, &reps) || reps < 1) return Usage(argv[0]);
    } else if (absl::ConsumePrefix(&arg, "--dtype=")) {
      dtype_flag = std::string(arg);
      if (dtype_flag != "f32" && dtype_flag != "bf16" && dtype_flag != "int8" &&
          dtype_flag != "all") {
        return Usage(argv[0]);
      }
    } else if (absl::ConsumePrefix(&arg, "--m=")) {
      row_counts.clear();
      for (absl::string_view part : absl::StrSplit(arg, ',')) {
        int64_t m;
        if (!absl::SimpleAtoi(part, &m) || m < 1) return Usage(argv[0]);
        row_counts.push_back(m);
      }
    } else {
      return Usage(argv[0]);
    }
  }
  std::vector<WeightDType> dtypes;
  if (dtype_flag == "f32" || dtype_flag == "all") dtypes.push_back(WeightDType::kF32);
  if (dtype_flag == "bf16" || dtype_flag == "all") dtypes.push_back(WeightDType::kBF16);
  if (dtype_flag == "int8" || dtype_flag == "all") dtypes.push_back(WeightDType::kInt8);

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  std::vector<float> random(kVocab * kDim);  // Large enough for every weight matrix.
  for (float& f : random) f = dist(rng);
  const int64_t max_m = *std::max_element(row_counts.begin(), row_counts.end());
  std::vector<float> x(max_m * 2 * kFfn);
  for (float& f : x) f = dist(rng);
  std::vector<float> y(max_m * kVocab);

  std::printf(
      "step = 32 x (qkv 960->1600, o 960->960, gate_up 960->5120, down 2560->960) + "
      "lm_head 960->32000; median of %d reps\n",
      reps);
  for (const WeightDType dtype : dtypes) {
    const std::string dtype_name(WeightDTypeName(dtype));
    const auto build_start = std::chrono::steady_clock::now();
    std::unique_ptr<Model> model = BuildModel(dtype, random);
    if (!model) {
      std::printf("%-4s  skipped (see error above)\n", dtype_name.c_str());
      continue;
    }
    const double build_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
    std::printf("%-4s  weights packed in %.1f s\n", dtype_name.c_str(), build_s);
    for (const int64_t m : row_counts) {
      for (int i = 0; i < 3; ++i) RunStep(*model, m, x, y);  // Warm-up, primitive creation.
      std::vector<double> ms;
      for (int i = 0; i < reps; ++i) {
        const auto start = std::chrono::steady_clock::now();
        RunStep(*model, m, x, y);
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
      }
      std::sort(ms.begin(), ms.end());
      const double median = ms[ms.size() / 2];
      std::printf(
          "%-4s  m=%-4ld %8.2f ms/step (min %.2f, max %.2f)  ceiling %8.1f tokens/s  "
          "impl %s\n",
          dtype_name.c_str(), static_cast<long>(m), median, ms.front(), ms.back(),
          1000.0 * m / median, ImplNames(*model).c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace kvserve::engine

int main(int argc, char** argv) { return kvserve::engine::Main(argc, argv); }
