#include "server/cli/offline_commands.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/cpu_features.h"
#include "engine/detokenizer.h"
#include "engine/kv_page_pool.h"
#include "engine/llama_model.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"
#include "server/models/model_source.h"
#include "serving/engine_loop.h"
#include "serving/model_executor.h"

ABSL_FLAG(std::string, model, "",
          "Model: a GGUF file, a Hugging Face folder (config.json + safetensors), or "
          "hf:OWNER/REPO[:FILE.gguf] (from the Hugging Face cache, $HF_HUB_CACHE or "
          "$HF_HOME/hub or ~/.cache/huggingface/hub, downloaded there if missing); OWNER/REPO "
          "that is no local path means hf:OWNER/REPO. serve: empty = the default model (trained on "
          "War and Peace), demo:random = the random-weight test model");
ABSL_FLAG(bool, offline, false,
          "hf: models come from the caches only, with no network (also HF_HUB_OFFLINE=1)");
ABSL_FLAG(std::string, prompt_ids, "", "Prompt as comma-separated token ids, e.g. 1,450,22");
ABSL_FLAG(std::string, prompt, "",
          "Prompt text (tokenized with the model's BOS); instead of --prompt-ids");
ABSL_FLAG(bool, add_special_tokens, false, "tokenize: prepend BOS when the model asks for it");
ABSL_FLAG(int, max_tokens, 16, "Number of tokens to generate");
ABSL_FLAG(std::string, weight_dtype, "auto",
          "Weights in memory: auto (quantized tensors stay as stored, float ones f32), f32, bf16, "
          "int8 (oneDNN; quantized tensors dequantized), q8_0 or q4_k (float tensors quantized "
          "at load)");
ABSL_FLAG(bool, ignore_eos, false, "Keep generating past the model's end-of-sequence token");
ABSL_FLAG(std::string, prompt_ids_file, "",
          "File with one prompt per line (comma-separated ids); all run as one batch");
ABSL_FLAG(float, temperature, 0.0f, "Sampling temperature (0 = greedy)");
ABSL_FLAG(int32_t, kv_pages, 0, "KV pages in the pool (0: enough for every prompt at once)");
ABSL_FLAG(bool, enable_prefix_caching, true, "Reuse cached KV pages of shared prompt prefixes");
ABSL_FLAG(int32_t, max_num_seqs, 256, "Most requests running at once");
ABSL_FLAG(int32_t, max_num_batched_tokens, 256,
          "Most tokens computed in one step: decode tokens first, then prompt chunks. Smaller "
          "bounds the pause a long prompt causes running streams; larger gives long prompts a "
          "slightly earlier first token (docs/BENCHMARKS.md, chat-load)");
ABSL_FLAG(std::string, kv_cache_dtype, "f16",
          "KV cache element type: f16 (as llama.cpp), bf16, f32 or q8_0 (blocks of 32 with one "
          "f16 scale each, as llama.cpp's -ctk/-ctv q8_0)");
ABSL_FLAG(int64_t, seed, -1, "Sampling seed (-1 = random)");
ABSL_FLAG(std::string, out, "", "Output file (logits: raw little-endian f32, rows x vocab)");

namespace kvserve::server {
namespace {

using engine::ForwardBatch;
using engine::ForwardRun;
using engine::KvPagePool;
using engine::LlamaModel;

constexpr int kPageSize = 16;

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& s) {
  if (s.empty()) return absl::InvalidArgumentError("--prompt-ids is empty; give e.g. 1,450,22");
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids: '", part, "' is not a token id"));
    }
    ids.push_back(id);
  }
  return ids;
}

// Loads --model through the one model-source loader; with `load_weights`, logs the model's shape.
absl::StatusOr<LoadedModel> LoadSource(bool load_weights) {
  absl::StatusOr<engine::WeightDType> dtype =
      engine::ParseWeightDType(absl::GetFlag(FLAGS_weight_dtype));
  if (!dtype.ok()) return dtype.status();
  ModelSourceOptions options;
  options.weight_dtype = *dtype;
  options.load_weights = load_weights;
  options.offline = absl::GetFlag(FLAGS_offline);
  absl::StatusOr<LoadedModel> loaded = LoadModelSource(absl::GetFlag(FLAGS_model), options);
  if (loaded.ok() && loaded->model != nullptr) {
    const engine::ModelConfig& c = loaded->model->config();
    std::fprintf(stderr,
                 "kvserve: model %s (%s): %lld layers, hidden %lld, heads %lld/%lld, vocab %lld, "
                 "weights %s\n",
                 loaded->name.c_str(), c.architecture.c_str(), (long long)c.num_layers,
                 (long long)c.hidden_size, (long long)c.num_heads, (long long)c.num_kv_heads,
                 (long long)c.vocab_size,
                 std::string(engine::WeightDTypeName(options.weight_dtype)).c_str());
    for (const std::string& line : engine::ModelConfigNotes(c)) {
      std::fprintf(stderr, "kvserve: %s\n", line.c_str());
    }
    for (const std::string& line : loaded->model->weight_summary()) {
      std::fprintf(stderr, "kvserve: weights: %s\n", line.c_str());
    }
  }
  return loaded;
}

// A pool just big enough for one sequence of `tokens` positions, pages in order.
absl::StatusOr<std::unique_ptr<KvPagePool>> MakePool(const LlamaModel& model, int64_t tokens,
                                                     std::vector<int32_t>* page_table) {
  const int pages = static_cast<int>((tokens + kPageSize - 1) / kPageSize);
  page_table->resize(pages);
  for (int i = 0; i < pages; ++i) (*page_table)[i] = i;
  absl::StatusOr<engine::KvDType> dtype = engine::ParseKvDType(absl::GetFlag(FLAGS_kv_cache_dtype));
  if (!dtype.ok()) return dtype.status();
  return KvPagePool::Create(model.KvShape(kPageSize, pages, *dtype));
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvserve: error: %s\n", std::string(s.message()).c_str());
  return 1;
}

// `s` as a JSON string literal; bytes that are not UTF-8 become U+FFFD.
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      const int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
      bool ok = len > 0 && i + len <= s.size() && c < 0xF8;
      for (int k = 1; ok && k < len; ++k) {
        ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
      }
      if (ok) {
        out.append(s, i, len);
        i += len;
      } else {
        out += "\xEF\xBF\xBD";
        ++i;
      }
    }
  }
  out += '"';
  return out;
}

}  // namespace

int RunTokenize(const std::vector<char*>& positional) {
  if (positional.size() != 1) {
    return Fail(absl::InvalidArgumentError("usage: kvserve tokenize --model FILE \"text\""));
  }
  absl::StatusOr<LoadedModel> loaded = LoadSource(/*load_weights=*/false);
  if (!loaded.ok()) return Fail(loaded.status());
  if (loaded->tokenizer == nullptr) return Fail(loaded->tokenizer_status);
  const std::vector<int32_t> ids =
      loaded->tokenizer->Encode(positional[0], absl::GetFlag(FLAGS_add_special_tokens));
  std::printf("{\"ids\":[%s]}\n", absl::StrJoin(ids, ",").c_str());
  return 0;
}

int RunGenerate(const std::vector<char*>& positional) {
  if (!positional.empty()) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[0], "'")));
  }
  // Prompts: --prompt-ids, or one comma-separated prompt per line of --prompt-ids-file; all are
  // submitted at once, so they run as one continuous batch.
  // Token-id prompts work without a tokenizer (e.g. the demo model's byte vocabulary, or a
  // file without tokenizer metadata); text needs one.
  const std::string prompt_text = absl::GetFlag(FLAGS_prompt);
  const int given = !prompt_text.empty() + !absl::GetFlag(FLAGS_prompt_ids).empty() +
                    !absl::GetFlag(FLAGS_prompt_ids_file).empty();
  if (given != 1) {
    return Fail(absl::InvalidArgumentError(
        "give exactly one of --prompt, --prompt-ids or --prompt-ids-file"));
  }
  const int max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (max_tokens < 1) return Fail(absl::InvalidArgumentError("--max-tokens must be >= 1"));
  absl::StatusOr<LoadedModel> loaded = LoadSource(/*load_weights=*/true);
  if (!loaded.ok()) return Fail(loaded.status());
  const engine::Tokenizer* tokenizer = loaded->tokenizer.get();
  if (tokenizer == nullptr && !prompt_text.empty()) return Fail(loaded->tokenizer_status);
  std::vector<std::vector<int32_t>> prompts;
  const std::string file = absl::GetFlag(FLAGS_prompt_ids_file);
  if (!prompt_text.empty()) {
    prompts.push_back(tokenizer->Encode(prompt_text, /*add_special_tokens=*/true));
    if (prompts.back().empty()) return Fail(absl::InvalidArgumentError("the prompt has no tokens"));
  } else if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return Fail(absl::NotFoundError(absl::StrCat("cannot read --prompt-ids-file ", file)));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      absl::StatusOr<std::vector<int32_t>> ids = ParseIds(line);
      if (!ids.ok()) return Fail(ids.status());
      prompts.push_back(*ids);
    }
  } else {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIds(absl::GetFlag(FLAGS_prompt_ids));
    if (!ids.ok()) return Fail(ids.status());
    prompts.push_back(*ids);
  }
  int64_t tokens_needed = 0;
  for (const auto& p : prompts)
    tokens_needed += (p.size() + max_tokens + kPageSize) / kPageSize * kPageSize;
  const int32_t num_pages =
      absl::GetFlag(FLAGS_kv_pages) > 0
          ? absl::GetFlag(FLAGS_kv_pages)
          : static_cast<int32_t>(std::min<int64_t>(tokens_needed, 1 << 20) / kPageSize + 1);
  absl::StatusOr<engine::KvDType> kv_dtype =
      engine::ParseKvDType(absl::GetFlag(FLAGS_kv_cache_dtype));
  if (!kv_dtype.ok()) return Fail(kv_dtype.status());
  absl::StatusOr<std::unique_ptr<serving::ModelExecutor>> executor =
      serving::ModelExecutor::Create(std::move(loaded->model), kPageSize, num_pages, *kv_dtype);
  if (!executor.ok()) return Fail(executor.status());
  serving::EngineLoopConfig config;
  config.max_queued_requests = static_cast<int32_t>(prompts.size()) + 1;
  config.scheduler.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  config.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  config.scheduler.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  absl::StatusOr<std::unique_ptr<serving::EngineLoop>> loop =
      serving::EngineLoop::Create(std::move(*executor), config);
  if (!loop.ok()) return Fail(loop.status());

  // The loader's EOS set: a folder's generation_config.json plus the tokenizer's, or the GGUF's.
  const absl::flat_hash_set<int32_t>& eos_ids = loaded->eos_ids;
  std::vector<std::shared_ptr<serving::OutputChannel>> channels;
  for (auto& prompt : prompts) {
    serving::GenerationRequest r;
    r.prompt = prompt;
    r.stop.max_tokens = max_tokens;
    r.stop.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
    r.stop.eos_token_ids = eos_ids;
    r.sampling.temperature = absl::GetFlag(FLAGS_temperature);
    if (absl::GetFlag(FLAGS_seed) >= 0) r.sampling.seed = absl::GetFlag(FLAGS_seed);
    absl::StatusOr<std::shared_ptr<serving::OutputChannel>> c = (*loop)->Submit(std::move(r));
    if (!c.ok()) return Fail(c.status());
    channels.push_back(*c);
  }
  for (auto& channel : channels) {
    std::vector<int32_t> ids;
    serving::RequestOutput out;
    while (channel->Pop(&out)) {
      for (const auto& t : out.tokens) ids.push_back(t.token_id);
      if (out.finished) break;
    }
    if (!out.error.ok()) return Fail(out.error);
    std::string text_field;
    if (tokenizer != nullptr) {
      // The generated text continues the prompt, so an SPM leading space is kept.
      engine::Detokenizer detokenizer(*tokenizer, /*continuation=*/true);
      std::string text;
      for (int32_t id : ids) text += detokenizer.Add(id);
      text += detokenizer.Finish();
      text_field = absl::StrCat(",\"text\":", JsonString(text));
    }
    std::printf("{\"ids\":[%s]%s,\"finish_reason\":\"%s\"}\n", absl::StrJoin(ids, ",").c_str(),
                text_field.c_str(),
                std::string(scheduler::FinishReasonName(out.finish_reason)).c_str());
  }
  // Scheduling figures of the run, for tests and curious users (stderr keeps stdout clean).
  const serving::EngineLoad load = (*loop)->Load();
  std::fprintf(stderr,
               "{\"steps\":%lld,\"preemptions\":%lld,\"prefix_query_tokens\":%lld,"
               "\"prefix_hit_tokens\":%lld,\"kv_pages\":%d}\n",
               (long long)load.steps, (long long)load.preemptions,
               (long long)load.prefix_query_tokens, (long long)load.prefix_hit_tokens,
               load.total_pages);
  return 0;
}

int RunLogits(const std::vector<char*>& positional) {
  if (!positional.empty()) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[0], "'")));
  }
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) return Fail(absl::InvalidArgumentError("--out is required"));
  absl::StatusOr<std::vector<int32_t>> prompt = ParseIds(absl::GetFlag(FLAGS_prompt_ids));
  if (!prompt.ok()) return Fail(prompt.status());
  absl::StatusOr<LoadedModel> loaded = LoadSource(/*load_weights=*/true);
  if (!loaded.ok()) return Fail(loaded.status());
  LlamaModel& model = *loaded->model;
  if (static_cast<int64_t>(prompt->size()) > model.config().context_length) {
    return Fail(absl::OutOfRangeError("prompt is longer than the context length"));
  }
  std::vector<int32_t> page_table;
  absl::StatusOr<std::unique_ptr<KvPagePool>> pool =
      MakePool(model, static_cast<int64_t>(prompt->size()), &page_table);
  if (!pool.ok()) return Fail(pool.status());
  ForwardBatch batch;
  batch.runs.push_back(ForwardRun{*prompt, 0, page_table, engine::LogitsMode::kAll});
  std::vector<float> logits;
  absl::Status s = model.Forward(batch, **pool, &logits);
  if (!s.ok()) return Fail(s);
  std::ofstream out(out_path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(logits.data()), logits.size() * sizeof(float));
  if (!out) return Fail(absl::UnavailableError(absl::StrCat("cannot write ", out_path)));
  return 0;
}

}  // namespace kvserve::server
