#include "tests/engine/synthetic_model.h"

#include "engine/dtype.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/gguf_test_writer.h"
#include "engine/dtype.h"
#include "engine/quant/random_blocks.h"

namespace kvserve::engine::testing {
namespace {

std::string Floats(std::mt19937& rng, int64_t n, float mean, float stddev) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return std::string(reinterpret_cast<const char*>(v.data()), n * sizeof(float));
}

}  // namespace

std::string WriteSyntheticModel(const SyntheticSpec& s) {
  std::mt19937 rng(s.seed);
  const std::string a = s.architecture;
  GgufTestWriter w;
  w.Add("general.architecture", Str(a));
  w.Add("general.name", Str("synthetic-" + a));
  w.Add(a + ".context_length", U32(static_cast<uint32_t>(s.context)));
  w.Add(a + ".embedding_length", U32(static_cast<uint32_t>(s.hidden)));
  w.Add(a + ".block_count", U32(static_cast<uint32_t>(s.layers)));
  w.Add(a + ".feed_forward_length", U32(static_cast<uint32_t>(s.ffn)));
  w.Add(a + ".attention.head_count", U32(static_cast<uint32_t>(s.heads)));
  w.Add(a + ".attention.head_count_kv", U32(static_cast<uint32_t>(s.kv_heads)));
  w.Add(a + ".attention.layer_norm_rms_epsilon", F32(1e-5f));
  w.Add(a + ".rope.freq_base", F32(10000.f));
  const int64_t hd = s.hidden / s.heads, q = s.heads * hd, kv = s.kv_heads * hd;
  auto add = [&](const std::string& name, std::vector<int64_t> dims, float mean, float stddev) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::string data = Floats(rng, n, mean, stddev);
    uint32_t type = 0;
    if (dims.size() == 2 && s.weight_type == GgmlType::kF16) {
      std::string halves(2 * n, '\0');
      for (int64_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, data.data() + 4 * i, 4);
        const uint16_t h = FloatToHalf(v);
        std::memcpy(halves.data() + 2 * i, &h, 2);
      }
      data = std::move(halves);
      type = static_cast<uint32_t>(GgmlType::kF16);
    } else if (dims.size() == 2 && s.weight_type != GgmlType::kF32) {
      const quant::FormatInfo& f = *quant::FindFormat(s.weight_type);
      const std::vector<uint8_t> rows = quant::RandomRows(f, dims[1], dims[0], rng);
      data.assign(reinterpret_cast<const char*>(rows.data()), rows.size());
      type = static_cast<uint32_t>(s.weight_type);
    }
    if (s.edit_tensor && !s.edit_tensor(name, dims)) return;
    w.AddTensor(TestTensor{name, dims, type, std::move(data), std::nullopt});
  };
  const float in_std = 1.0f / std::sqrt(static_cast<float>(s.hidden));
  add("token_embd.weight", {s.hidden, s.vocab}, 0.f, 1.f);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {s.hidden}, 1.f, 0.1f);
    add(b + "attn_q.weight", {s.hidden, q}, 0.f, in_std);
    add(b + "attn_k.weight", {s.hidden, kv}, 0.f, in_std);
    add(b + "attn_v.weight", {s.hidden, kv}, 0.f, in_std);
    if (a == "qwen2") {
      add(b + "attn_q.bias", {q}, 0.f, 0.1f);
      add(b + "attn_k.bias", {kv}, 0.f, 0.1f);
      add(b + "attn_v.bias", {kv}, 0.f, 0.1f);
    }
    add(b + "attn_output.weight", {q, s.hidden}, 0.f, 1.0f / std::sqrt(static_cast<float>(q)));
    add(b + "ffn_norm.weight", {s.hidden}, 1.f, 0.1f);
    add(b + "ffn_gate.weight", {s.hidden, s.ffn}, 0.f, in_std);
    add(b + "ffn_up.weight", {s.hidden, s.ffn}, 0.f, in_std);
    add(b + "ffn_down.weight", {s.ffn, s.hidden}, 0.f, 1.0f / std::sqrt(static_cast<float>(s.ffn)));
  }
  add("output_norm.weight", {s.hidden}, 1.f, 0.1f);
  if (!s.tied) add("output.weight", {s.hidden, s.vocab}, 0.f, 2.0f * in_std);
  static int counter = 0;
  const std::string path = ::testing::TempDir() + "kvserve_synthetic_" +
                           std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".gguf";
  const std::string bytes = w.Build().bytes;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return "";
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return path;
}

}  // namespace kvserve::engine::testing
