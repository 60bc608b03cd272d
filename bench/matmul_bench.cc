// Times the matmuls of one decoding step of a Llama-shaped model through engine::Linear, for
// several batch row counts m and weight types, and reports the weight bytes the step reads and
// the bandwidth that implies. Weights are random (valid blocks for the quantized types): only
// the shapes and the types matter for speed.
//
// Shapes: smollm360 (dim 960, 32 layers, 15/5 heads of 64, FFN 2560, vocab 32000) and llama420
// (dim 1024, 24 layers, 16/8 heads of 64, FFN 2816, vocab 32000).
// Types: f32, bf16, int8 (oneDNN) and the quantized ones by kvserve's kernels: q4_0, q4_1, q5_0,
// q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs (every matrix of that type, the LM
// head included), q4_k_m and q5_k_m (the mixes llama.cpp writes: attn_v, ffn_down of half the
// layers and the LM head in Q6_K). q4_k and friends need row lengths that are multiples of
// 256: use llama420.
//
// Usage: kvserve_matmul_bench [--shape=llama420] [--reps=N] [--dtype=q4_k_m,q8_0,...]
//                             [--m=1,8,32,64] [--isa=scalar|avx2|avxvnni|avx512|amx]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/primitives.h"
#include "engine/quant/float_linear.h"
#include "engine/quant/quantized_linear.h"
#include "engine/quant/random_blocks.h"

namespace kvserve::engine {
namespace {

struct Shape {
  const char* name;
  int64_t dim, layers, heads, kv_heads, head_dim, ffn, vocab;
};
constexpr Shape kShapes[] = {{"smollm360", 960, 32, 15, 5, 64, 2560, 32000},
                             {"llama420", 1024, 24, 16, 8, 64, 2816, 32000}};

struct LayerLinears {
  std::unique_ptr<Linear> qkv, o, gate_up, down;
};
struct Model {
  std::vector<LayerLinears> layers;
  std::unique_ptr<Linear> lm_head;
  int64_t bytes = 0;  // weight bytes one step reads
};

// The weight type of each role for one of the mixes, or the single type everywhere.
struct Recipe {
  bool oneDnn = false;
  bool ours_float = false;  // f32 / f16 on kvserve's float kernels (quant/float_linear.h)
  WeightDType float_dtype = WeightDType::kF32;
  GgmlType base = GgmlType::kQ8_0;  // everything not listed below
  GgmlType v = GgmlType::kQ8_0, down_more_bits = GgmlType::kQ8_0, head = GgmlType::kQ8_0;
};

bool ParseRecipe(std::string name, Recipe* r) {
  name = absl::AsciiStrToLower(name);
  if (name == "f32" || name == "f16") {
    r->ours_float = true;
    r->float_dtype = name == "f16" ? WeightDType::kF16 : WeightDType::kF32;
    return true;
  }
  if (name == "onednn-f32") name = "f32";
  if (name == "f32" || name == "bf16" || name == "int8") {
    r->oneDnn = true;
    return ParseWeightDType(name).ok() && (r->float_dtype = *ParseWeightDType(name), true);
  }
  if (name == "q4_k_m" || name == "q5_k_m") {
    r->base = name == "q4_k_m" ? GgmlType::kQ4_K : GgmlType::kQ5_K;
    r->v = r->down_more_bits = r->head = GgmlType::kQ6_K;
    return true;
  }
  for (const quant::FormatInfo& f : quant::kFormats) {
    if (absl::AsciiStrToLower(std::string(GgmlTypeName(f.type))) == name) {
      r->base = r->v = r->down_more_bits = r->head = f.type;
      return true;
    }
  }
  return false;
}

struct Builder {
  const Recipe& recipe;
  quant::QuantIsa isa;
  std::mt19937 rng{7};
  std::vector<float> random;  // for the float types
  int64_t bytes = 0;

  std::unique_ptr<Linear> Make(const std::vector<std::pair<GgmlType, int64_t>>& parts, int64_t k) {
    int64_t n = 0;
    for (const auto& p : parts) n += p.second;
    if (recipe.oneDnn || recipe.ours_float) {
      if (static_cast<int64_t>(random.size()) < n * k) {
        std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
        random.resize(n * k);
        for (float& f : random) f = dist(rng);
      }
    }
    if (recipe.ours_float) {
      const bool f16 = recipe.float_dtype == WeightDType::kF16;
      auto linear = quant::FloatLinear::Create(
          random.data(), n, k, f16 ? quant::FloatStorage::kF16 : quant::FloatStorage::kF32, isa,
          nullptr);
      if (!linear.ok()) {
        std::fprintf(stderr, "%s\n", linear.status().ToString().c_str());
        return nullptr;
      }
      bytes += (*linear)->weight_bytes();
      return *std::move(linear);
    }
    if (recipe.oneDnn) {
      auto linear = OneDnnLinear::Create(random.data(), n, k, recipe.float_dtype);
      if (!linear.ok()) {
        std::fprintf(stderr, "%s\n", linear.status().ToString().c_str());
        return nullptr;
      }
      bytes += n * k *
               (recipe.float_dtype == WeightDType::kF32    ? 4
                : recipe.float_dtype == WeightDType::kBF16 ? 2
                                                           : 1);
      return *std::move(linear);
    }
    std::vector<std::vector<uint8_t>> data;
    std::vector<quant::QuantizedLinear::Part> qparts;
    for (const auto& [type, rows] : parts) {
      data.push_back(quant::RandomRows(*quant::FindFormat(type), rows, k, rng));
      qparts.push_back({type, data.back().data(), rows});
    }
    auto linear = quant::QuantizedLinear::Create(qparts, k, isa);
    if (!linear.ok()) {
      std::fprintf(stderr, "%s\n", linear.status().ToString().c_str());
      return nullptr;
    }
    bytes += (*linear)->weight_bytes();
    return *std::move(linear);
  }
};

std::unique_ptr<Model> BuildModel(const Shape& s, const Recipe& r, quant::QuantIsa isa) {
  auto model = std::make_unique<Model>();
  Builder b{r, isa};
  const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  for (int64_t l = 0; l < s.layers; ++l) {
    // llama.cpp's use_more_bits: the first and last eighth of the layers, and every third.
    const bool more = l < s.layers / 8 || l >= 7 * s.layers / 8 || (l - s.layers / 8) % 3 == 2;
    LayerLinears layer;
    layer.qkv = b.Make({{r.base, q}, {r.base, kv}, {more ? r.v : r.base, kv}}, s.dim);
    layer.o = b.Make({{r.base, s.dim}}, q);
    layer.gate_up = b.Make({{r.base, 2 * s.ffn}}, s.dim);
    layer.down = b.Make({{more ? r.down_more_bits : r.base, s.dim}}, s.ffn);
    if (!layer.qkv || !layer.o || !layer.gate_up || !layer.down) return nullptr;
    model->layers.push_back(std::move(layer));
  }
  model->lm_head = b.Make({{r.head, s.vocab}}, s.dim);
  if (!model->lm_head) return nullptr;
  model->bytes = b.bytes;
  return model;
}

void RunStep(Model& model, int64_t m, const std::vector<float>& x, std::vector<float>& y) {
  for (LayerLinears& layer : model.layers) {
    layer.qkv->Forward(x.data(), m, y.data());
    layer.o->Forward(x.data(), m, y.data());
    layer.gate_up->Forward(x.data(), m, y.data());
    layer.down->Forward(x.data(), m, y.data());
  }
  model.lm_head->Forward(x.data(), m, y.data());
}

std::string Describe(const Model& model) {
  std::set<std::string> names;
  for (const LayerLinears& l : model.layers) {
    for (const Linear* linear : {l.qkv.get(), l.o.get(), l.gate_up.get(), l.down.get()}) {
      names.emplace(linear->Describe());
    }
  }
  names.emplace(model.lm_head->Describe());
  return absl::StrJoin(names, "; ");
}

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--shape=smollm360|llama420] [--reps=N] [--dtype=q4_k_m,q8_0,f32,...] "
               "[--m=1,8,32,64] [--isa=NAME]\n",
               argv0);
  return 2;
}

int Main(int argc, char** argv) {
  int reps = 20;
  const Shape* shape = &kShapes[1];
  std::vector<std::string> dtypes = {"q4_k_m", "q8_0", "f32"};
  std::vector<int64_t> row_counts = {1, 8, 32, 64};
  quant::QuantIsa isa = quant::DefaultQuantIsa();
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--reps=")) {
      if (!absl::SimpleAtoi(arg, &reps) || reps < 1) return Usage(argv[0]);
    } else if (absl::ConsumePrefix(&arg, "--shape=")) {
      shape = nullptr;
      for (const Shape& s : kShapes) {
        if (arg == s.name) shape = &s;
      }
      if (shape == nullptr) return Usage(argv[0]);
    } else if (absl::ConsumePrefix(&arg, "--dtype=")) {
      dtypes = absl::StrSplit(arg, ',');
      if (dtypes.size() == 1 && dtypes[0] == "all") dtypes = {"f32", "bf16", "int8"};
    } else if (absl::ConsumePrefix(&arg, "--isa=")) {
      absl::StatusOr<quant::QuantIsa> parsed = quant::ParseQuantIsa(std::string(arg));
      if (!parsed.ok()) return Usage(argv[0]);
      isa = *parsed;
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
  const int64_t max_m = *std::max_element(row_counts.begin(), row_counts.end());
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(max_m * shape->ffn);
  for (float& f : x) f = dist(rng);
  std::vector<float> y(max_m * shape->vocab);
  std::printf("shape %s; median of %d reps; quantized kernels on %s\n", shape->name, reps,
              std::string(quant::QuantIsaName(isa)).c_str());
  for (const std::string& name : dtypes) {
    Recipe recipe;
    if (!ParseRecipe(name, &recipe)) return Usage(argv[0]);
    const auto build_start = std::chrono::steady_clock::now();
    std::unique_ptr<Model> model = BuildModel(*shape, recipe, isa);
    if (!model) {
      std::printf("%-7s skipped (see error above)\n", name.c_str());
      continue;
    }
    const double build_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();
    std::printf("%-7s %.3f GB of weights, built in %.1f s: %s\n", name.c_str(), model->bytes / 1e9,
                build_s, Describe(*model).c_str());
    for (const int64_t m : row_counts) {
      for (int i = 0; i < 3; ++i) RunStep(*model, m, x, y);
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
      std::printf("%-7s m=%-4ld %8.2f ms/step (min %.2f)  ceiling %8.1f tokens/s  %5.1f GB/s\n",
                  name.c_str(), static_cast<long>(m), median, ms.front(), 1000.0 * m / median,
                  model->bytes / 1e6 / median);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace kvserve::engine

int main(int argc, char** argv) { return kvserve::engine::Main(argc, argv); }
