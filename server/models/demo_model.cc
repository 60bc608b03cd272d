#include "server/models/demo_model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/gguf.h"
#include "server/models/gguf_writer.h"
#include "server/models/text_codec.h"

namespace kvserve::server {
namespace {

constexpr int64_t kHidden = 256, kLayers = 4, kHeads = 8, kKvHeads = 4, kFfn = 512, kContext = 2048,
                  kVocab = ByteLevelCodec::kVocabSize;
constexpr uint32_t kSeed = 20261128;
// Bump when anything above or below changes, so stale cached files are not reused.
constexpr int kVersion = 3;  // 2: a chat template; 3: named kvserve-demo-random

bool IsPrintable(int64_t token) { return (token >= 0x20 && token < 0x7F) || token == '\n'; }

}  // namespace

absl::StatusOr<std::string> FindDefaultModel() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("KVSERVE_DEFAULT_MODEL"); env != nullptr && *env != '\0') {
    if (std::filesystem::is_regular_file(env)) return std::string(env);
    return absl::NotFoundError(
        absl::StrCat("KVSERVE_DEFAULT_MODEL=", env, " is not a file (the default model)"));
  }
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    tried.push_back(
        (exe.parent_path().parent_path() / "share" / "kvserve" / kDefaultModelFile).string());
  }
#ifdef KVSERVE_SOURCE_DIR
  tried.push_back(
      (std::filesystem::path(KVSERVE_SOURCE_DIR) / "models" / kDefaultModelFile).string());
#endif
  for (const std::string& path : tried) {
    if (std::filesystem::is_regular_file(path, ec)) return path;
  }
  return absl::NotFoundError(absl::StrCat(
      "the default model ", kDefaultModelFile, " is in none of: ", absl::StrJoin(tried, ", "),
      " (set KVSERVE_DEFAULT_MODEL, pass --model, or --model ", kRandomDemoModelRef,
      " for the generated random-weight model)"));
}

std::string DemoModelDirectory() {
  for (const char* var : {"KVSERVE_CACHE", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

absl::StatusOr<std::string> WriteDemoModel(const std::string& directory) {
  const std::string path =
      (std::filesystem::path(directory) / absl::StrFormat("kvserve-demo-v%d.gguf", kVersion))
          .string();
  if (std::filesystem::exists(path) && engine::GgufFile::Open(path).ok()) return path;
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);

  std::mt19937 rng(kSeed);
  auto random = [&rng](int64_t n, float mean, float stddev) {
    std::normal_distribution<float> dist(mean, stddev);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
  };
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddString("general.name", kDemoModelName);
  w.AddString("general.description",
              "kvserve built-in random model: random weights, byte-level vocabulary");
  w.AddUint32("llama.context_length", kContext);
  w.AddUint32("llama.embedding_length", kHidden);
  w.AddUint32("llama.block_count", kLayers);
  w.AddUint32("llama.feed_forward_length", kFfn);
  w.AddUint32("llama.attention.head_count", kHeads);
  w.AddUint32("llama.attention.head_count_kv", kKvHeads);
  w.AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.AddFloat32("llama.rope.freq_base", 10000.f);
  // The vocabulary, for tools that look; kvserve itself uses ByteLevelCodec for this model.
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(absl::StrFormat("<0x%02X>", b));
    types.push_back(6);  // BYTE
  }
  tokens.push_back("<s>");
  tokens.push_back("</s>");
  types.push_back(3);  // CONTROL
  types.push_back(3);
  w.AddString("tokenizer.ggml.model", "kvserve-bytes");
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddInt32Array("tokenizer.ggml.token_type", types);
  w.AddUint32("tokenizer.ggml.bos_token_id", ByteLevelCodec::kBos);
  w.AddUint32("tokenizer.ggml.eos_token_id", ByteLevelCodec::kEos);
  // A plain chat format (the vocabulary is bytes, so the template writes no special tokens).
  w.AddString("tokenizer.chat_template",
              "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content | trim }}\n"
              "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}");

  const int64_t head_dim = kHidden / kHeads, q = kHeads * head_dim, kv = kKvHeads * head_dim;
  const float in_std = 1.0f / std::sqrt(static_cast<float>(kHidden));
  w.AddTensorF32("token_embd.weight", {kHidden, kVocab}, random(kHidden * kVocab, 0.f, 1.f));
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string b = absl::StrCat("blk.", l, ".");
    w.AddTensorF32(b + "attn_norm.weight", {kHidden}, random(kHidden, 1.f, 0.1f));
    w.AddTensorF32(b + "attn_q.weight", {kHidden, q}, random(kHidden * q, 0.f, in_std));
    w.AddTensorF32(b + "attn_k.weight", {kHidden, kv}, random(kHidden * kv, 0.f, in_std));
    w.AddTensorF32(b + "attn_v.weight", {kHidden, kv}, random(kHidden * kv, 0.f, in_std));
    w.AddTensorF32(b + "attn_output.weight", {q, kHidden},
                   random(q * kHidden, 0.f, 1.0f / std::sqrt(static_cast<float>(q))));
    w.AddTensorF32(b + "ffn_norm.weight", {kHidden}, random(kHidden, 1.f, 0.1f));
    w.AddTensorF32(b + "ffn_gate.weight", {kHidden, kFfn}, random(kHidden * kFfn, 0.f, in_std));
    w.AddTensorF32(b + "ffn_up.weight", {kHidden, kFfn}, random(kHidden * kFfn, 0.f, in_std));
    w.AddTensorF32(b + "ffn_down.weight", {kFfn, kHidden},
                   random(kFfn * kHidden, 0.f, 1.0f / std::sqrt(static_cast<float>(kFfn))));
  }
  w.AddTensorF32("output_norm.weight", {kHidden}, random(kHidden, 1.f, 0.1f));
  // LM head, one row of kHidden per token: printable bytes get rows four times larger, so their
  // logits spread wider and the top token is almost always printable.
  std::vector<float> head = random(kHidden * kVocab, 0.f, 2.0f * in_std);
  for (int64_t t = 0; t < kVocab; ++t) {
    if (IsPrintable(t)) continue;
    for (int64_t i = 0; i < kHidden; ++i) head[t * kHidden + i] *= 0.25f;
  }
  w.AddTensorF32("output.weight", {kHidden, kVocab}, std::move(head));
  absl::Status s = w.WriteFile(path);
  if (!s.ok()) return s;
  return path;
}

}  // namespace kvserve::server
