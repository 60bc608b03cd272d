// Single-stream speed of the engine itself (no scheduler, no server): prompt tokens/s for one
// prefill of P tokens, and decode tokens/s for T greedy steps after it. Prints one JSON line.
//
//   kvserve_single_stream_bench --model M.gguf --weight_dtype auto --prompt_len 16 --gen 64
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "engine/gguf.h"
#include "engine/kv_page_pool.h"
#include "engine/llama_model.h"

ABSL_FLAG(std::string, model, "", "GGUF model");
ABSL_FLAG(std::string, weight_dtype, "auto", "f32, bf16, int8, or auto (bf16 with AVX-512 BF16)");
ABSL_FLAG(int, prompt_len, 16, "prompt tokens");
ABSL_FLAG(int, gen, 64, "generated tokens");
ABSL_FLAG(int, reps, 3, "repetitions (the best is reported)");

using namespace kvserve::engine;

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto file = GgufFile::Open(absl::GetFlag(FLAGS_model));
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  LoadOptions opts;
  absl::StatusOr<WeightDType> dtype = ParseWeightDType(absl::GetFlag(FLAGS_weight_dtype));
  if (!dtype.ok()) {
    std::fprintf(stderr, "%s\n", std::string(dtype.status().message()).c_str());
    return 1;
  }
  opts.weight_dtype = *dtype;
  auto t_load = std::chrono::steady_clock::now();
  auto model = LlamaModel::Load(std::shared_ptr<const GgufFile>(std::move(*file)), opts);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const int P = absl::GetFlag(FLAGS_prompt_len), T = absl::GetFlag(FLAGS_gen);
  const int page = 16, pages = (P + T + page - 1) / page;
  std::vector<int32_t> table(pages);
  for (int i = 0; i < pages; ++i) table[i] = i;
  auto pool = KvPagePool::Create((*model)->KvShape(page, pages, KvDType::kF32));
  if (!pool.ok()) return 1;
  const int64_t vocab = (*model)->config().vocab_size;
  std::vector<int32_t> prompt(P);
  for (int i = 0; i < P; ++i) prompt[i] = 100 + (i * 7) % 20000 % static_cast<int>(vocab - 100);
  double best_prefill = 1e30, best_decode = 1e30;
  std::vector<float> logits;
  for (int rep = 0; rep < absl::GetFlag(FLAGS_reps); ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    ForwardBatch b;
    b.runs.push_back(ForwardRun{prompt, 0, table, LogitsMode::kLast});
    if (!(*model)->Forward(b, **pool, &logits).ok()) return 1;
    auto t1 = std::chrono::steady_clock::now();
    for (int t = 0; t < T; ++t) {
      const int32_t next = static_cast<int32_t>(
          std::max_element(logits.begin(), logits.begin() + vocab) - logits.begin());
      std::vector<int32_t> one = {next};
      ForwardBatch d;
      d.runs.push_back(ForwardRun{one, P + t, table, LogitsMode::kLast});
      if (!(*model)->Forward(d, **pool, &logits).ok()) return 1;
    }
    auto t2 = std::chrono::steady_clock::now();
    best_prefill = std::min(best_prefill, std::chrono::duration<double>(t1 - t0).count());
    best_decode = std::min(best_decode, std::chrono::duration<double>(t2 - t1).count());
  }
  std::printf(
      "{\"engine\":\"kvserve\",\"weight_dtype\":\"%s\",\"prompt_len\":%d,\"gen\":%d,"
      "\"load_s\":%.2f,\"prompt_tokens_per_s\":%.1f,\"decode_tokens_per_s\":%.1f,"
      "\"decode_ms_per_token\":%.2f}\n",
      std::string(WeightDTypeName(opts.weight_dtype)).c_str(), P, T, load_s, P / best_prefill,
      T / best_decode, 1000 * best_decode / T);
  return 0;
}
