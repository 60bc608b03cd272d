// Load generator for the engine front: N concurrent greedy requests (prompt of P tokens after a
// BOS, T output tokens, EOS ignored) submitted at once through EngineLoop::Submit, consumed
// concurrently as their tokens arrive. Prints one JSON line per N: aggregate output tokens/s (N*T
// over the wall time from the first submit to the last finished output), time to first token and
// inter-token latency percentiles, engine steps, and where the steps' time went (StepProfile).
//
//   kvserve_load_bench --model M.gguf --n 1,8,32 --prompt-len 16 --gen 64 --weight-dtype f32
//
// The prompts are the llama.cpp oracle's (`llamacpp_oracle.mjs bench`): request i gets
// [1, 100 + ((k*7 + i*13) % 20000) for k < P], so both engines run the same workload.
//
// Timing is taken on the consumer side: every channel has a notifier that queues its index, and
// one consumer thread drains ready channels and stamps each output with steady_clock on arrival.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "constrain/grammar.h"
#include "constrain/token_constraint.h"
#include "constrain/token_vocabulary.h"
#include "engine/gguf.h"
#include "engine/llama_model.h"
#include "engine/primitives.h"
#include "engine/step_profile.h"
#include "engine/tokenizer.h"
#include "serving/engine_loop.h"
#include "serving/model_executor.h"

ABSL_FLAG(std::string, model, "", "GGUF model file");
ABSL_FLAG(
    std::string, n, "8",
    "concurrent requests; a comma-separated list runs each count in turn (one JSON line each)");
ABSL_FLAG(int, prompt_len, 16, "prompt tokens per request (after a BOS token)");
ABSL_FLAG(int, gen, 64, "output tokens per request (EOS ignored)");
ABSL_FLAG(std::string, kv_cache_memory, "",
          "KV pool size in bytes (suffix K, M or G allowed); default: just enough for the run");
ABSL_FLAG(int, kv_pages, 0, "KV pool size in pages (overrides --kv-cache-memory)");
ABSL_FLAG(int, kv_page_size, 16, "tokens per KV page");
ABSL_FLAG(int, max_num_seqs, 256, "scheduler: running requests at once");
ABSL_FLAG(int, max_num_batched_tokens, 256, "scheduler: tokens computed per step");
ABSL_FLAG(bool, enable_prefix_caching, true, "scheduler: reuse cached prompt pages");
ABSL_FLAG(std::string, weight_dtype, "auto", "f32, bf16, int8, or auto (bf16 with AVX-512 BF16)");
ABSL_FLAG(bool, warmup, true,
          "first run the same N requests (other prompts) for 2 tokens, untimed, so oneDNN "
          "primitives for this run's row counts exist before timing");
ABSL_FLAG(bool, profile, true, "collect the step profile (StepProfile)");
ABSL_FLAG(std::string, gbnf, "",
          "structured output: every request follows this GBNF grammar file (the model's "
          "tokenizer builds the token trie); its mask cost shows in the sampling phase");
ABSL_FLAG(double, temperature, 0.0, "sampling temperature (0: greedy); request i has seed i");

namespace kvserve {
namespace {

using Clock = std::chrono::steady_clock;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvserve_load_bench: error: %s\n", std::string(s.message()).c_str());
  return 1;
}

absl::StatusOr<int64_t> ParseBytes(std::string s) {
  int64_t scale = 1;
  if (!s.empty()) {
    const char last = s.back();
    if (last == 'K' || last == 'k') scale = int64_t{1} << 10;
    if (last == 'M' || last == 'm') scale = int64_t{1} << 20;
    if (last == 'G' || last == 'g') scale = int64_t{1} << 30;
    if (scale != 1) s.pop_back();
  }
  int64_t value;
  if (!absl::SimpleAtoi(s, &value) || value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv-cache-memory must be a positive byte count, not '", s, "'"));
  }
  return value * scale;
}

// Nearest-rank percentile of a non-empty sorted vector.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(p / 100.0 * sorted.size() + 0.999999);
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::vector<int32_t> OraclePrompt(int request, int prompt_len) {
  std::vector<int32_t> ids = {1};
  for (int k = 0; k < prompt_len; ++k) ids.push_back(100 + (k * 7 + request * 13) % 20000);
  return ids;
}

// The last output of a run is pushed inside the engine's final step; the step's counters are
// published just after. Waits until they show no request left.
void WaitForLastStep(serving::EngineLoop& loop) {
  for (;;) {
    const serving::EngineLoad load = loop.Load();
    if (load.running == 0 && load.waiting == 0) return;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

struct RunResult {
  double wall_s = 0;
  int64_t output_tokens = 0;
  std::vector<double> ttft_ms, itl_ms;
  absl::Status error;
};

// Submits `n` requests at once (request ids offset by `first_request` for distinct prompts) and
// drains every channel until all have finished.
RunResult RunOnce(serving::EngineLoop& loop, int n, int first_request, int prompt_len, int gen,
                  const std::shared_ptr<const engine::TokenConstraint>& constraint) {
  RunResult result;
  absl::Mutex mu;
  std::deque<int> ready;  // channel indices with outputs queued, guarded by mu
  std::vector<std::shared_ptr<serving::OutputChannel>> channels(n);
  std::vector<Clock::time_point> submitted(n), last_output(n);
  std::vector<bool> got_first(n, false), done(n, false);

  const Clock::time_point start = Clock::now();
  for (int i = 0; i < n; ++i) {
    serving::GenerationRequest r;
    r.prompt = OraclePrompt(first_request + i, prompt_len);
    r.stop.max_tokens = gen;
    r.stop.ignore_eos = true;
    r.sampling.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
    r.sampling.seed = static_cast<uint64_t>(first_request + i);
    r.sampling.constraint = constraint;
    submitted[i] = Clock::now();
    absl::StatusOr<std::shared_ptr<serving::OutputChannel>> c = loop.Submit(std::move(r));
    if (!c.ok()) {
      result.error = c.status();
      for (int j = 0; j < i; ++j) loop.Abort(channels[j]->request_id());
      // Fall through to drain the aborted ones.
      n = i;
      break;
    }
    channels[i] = *c;
    channels[i]->SetNotifier([&mu, &ready, i] {
      absl::MutexLock lock(&mu);
      ready.push_back(i);
    });
  }

  int remaining = n;
  Clock::time_point last_finish = start;
  while (remaining > 0) {
    int i;
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](std::deque<int>* q) { return !q->empty(); }, &ready));
      i = ready.front();
      ready.pop_front();
    }
    serving::RequestOutput out;
    while (!done[i] && channels[i]->TryPop(&out)) {
      const Clock::time_point now = Clock::now();
      const int k = static_cast<int>(out.tokens.size());
      if (k > 0) {
        if (!got_first[i]) {
          result.ttft_ms.push_back(
              std::chrono::duration<double, std::milli>(now - submitted[i]).count());
          got_first[i] = true;
          // Tokens beyond the first in the same output arrived with no gap.
          for (int t = 1; t < k; ++t) result.itl_ms.push_back(0);
        } else {
          const double gap =
              std::chrono::duration<double, std::milli>(now - last_output[i]).count();
          for (int t = 0; t < k; ++t) result.itl_ms.push_back(gap / k);
        }
        last_output[i] = now;
        result.output_tokens += k;
      }
      if (out.finished) {
        if (!out.error.ok() && result.error.ok()) result.error = out.error;
        done[i] = true;
        --remaining;
        last_finish = now;
      }
    }
  }
  for (int i = 0; i < n; ++i) channels[i]->SetNotifier(nullptr);
  result.wall_s = std::chrono::duration<double>(last_finish - start).count();
  std::sort(result.ttft_ms.begin(), result.ttft_ms.end());
  std::sort(result.itl_ms.begin(), result.itl_ms.end());
  return result;
}

// The grammar in `path`, compiled for the vocabulary of `file`'s tokenizer.
absl::StatusOr<std::shared_ptr<const constrain::GrammarConstraint>> CompileGrammarFile(
    const std::string& path, const engine::GgufFile& file) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open --gbnf ", path));
  std::string text;
  char buffer[4096];
  for (size_t k; (k = std::fread(buffer, 1, sizeof(buffer), f)) > 0;) text.append(buffer, k);
  std::fclose(f);
  absl::StatusOr<std::shared_ptr<const constrain::Grammar>> grammar =
      constrain::Grammar::Parse(text);
  if (!grammar.ok()) return grammar.status();
  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer =
      engine::LoadTokenizerFromGguf(file);
  if (!tokenizer.ok()) return tokenizer.status();
  const Clock::time_point start = Clock::now();
  std::vector<std::string> pieces((*tokenizer)->vocab_size());
  for (int32_t id = 0; id < (*tokenizer)->vocab_size(); ++id)
    pieces[id] = (*tokenizer)->TokenPiece(id);
  auto vocabulary = std::make_shared<const constrain::TokenVocabulary>(std::move(pieces));
  std::fprintf(stderr, "token trie of %d tokens built in %.1f ms\n", vocabulary->size(),
               std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  return constrain::GrammarConstraint::Create(*std::move(grammar), std::move(vocabulary));
}

int Main() {
  const int prompt_len = absl::GetFlag(FLAGS_prompt_len), gen = absl::GetFlag(FLAGS_gen),
            page_size = absl::GetFlag(FLAGS_kv_page_size);
  std::vector<int> ns;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_n), ',')) {
    int n;
    if (!absl::SimpleAtoi(part, &n) || n < 1) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--n must be a comma-separated list of positive counts, not '",
                       absl::GetFlag(FLAGS_n), "'")));
    }
    ns.push_back(n);
  }
  if (ns.empty() || prompt_len < 0 || gen < 1 || page_size < 1) {
    return Fail(absl::InvalidArgumentError(
        "--n, --gen and --kv-page-size must be >= 1 and --prompt-len >= 0"));
  }
  const int max_n = *std::max_element(ns.begin(), ns.end());
  engine::LoadOptions options;
  absl::StatusOr<engine::WeightDType> dtype =
      engine::ParseWeightDType(absl::GetFlag(FLAGS_weight_dtype));
  if (!dtype.ok()) return Fail(dtype.status());
  options.weight_dtype = *dtype;

  absl::StatusOr<std::unique_ptr<engine::GgufFile>> file =
      engine::GgufFile::Open(absl::GetFlag(FLAGS_model));
  if (!file.ok()) return Fail(file.status());
  absl::StatusOr<std::shared_ptr<const constrain::GrammarConstraint>> compiled =
      std::shared_ptr<const constrain::GrammarConstraint>();
  std::shared_ptr<const engine::TokenConstraint> constraint;
  if (!absl::GetFlag(FLAGS_gbnf).empty()) {
    compiled = CompileGrammarFile(absl::GetFlag(FLAGS_gbnf), **file);
    if (!compiled.ok()) return Fail(compiled.status());
    // The grammar never ends in these runs (EOS ignored): its end tokens are never needed.
    constraint = std::make_shared<const constrain::RequestConstraint>(
        *compiled, absl::flat_hash_set<int32_t>{0});
  }
  const Clock::time_point load_start = Clock::now();
  absl::StatusOr<std::unique_ptr<engine::LlamaModel>> model =
      engine::LlamaModel::Load(std::shared_ptr<const engine::GgufFile>(std::move(*file)), options);
  if (!model.ok()) return Fail(model.status());
  const double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();

  // Pages: explicit, from a byte budget, or enough for every request's whole sequence.
  int32_t num_pages = absl::GetFlag(FLAGS_kv_pages);
  if (num_pages <= 0 && !absl::GetFlag(FLAGS_kv_cache_memory).empty()) {
    absl::StatusOr<int64_t> bytes = ParseBytes(absl::GetFlag(FLAGS_kv_cache_memory));
    if (!bytes.ok()) return Fail(bytes.status());
    num_pages =
        serving::ModelExecutor::PagesForBytes(**model, page_size, engine::KvDType::kF32, *bytes);
  }
  if (num_pages <= 0) {
    const int64_t per_request = (prompt_len + 1 + gen + page_size - 1) / page_size;
    num_pages = static_cast<int32_t>(max_n * per_request + 1);
  }
  absl::StatusOr<std::unique_ptr<serving::ModelExecutor>> executor = serving::ModelExecutor::Create(
      std::move(*model), page_size, num_pages, engine::KvDType::kF32);
  if (!executor.ok()) return Fail(executor.status());
  serving::EngineLoopConfig config;
  config.max_queued_requests = max_n + 1;
  config.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  config.scheduler.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  config.scheduler.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  absl::StatusOr<std::unique_ptr<serving::EngineLoop>> loop =
      serving::EngineLoop::Create(std::move(*executor), config);
  if (!loop.ok()) return Fail(loop.status());

  for (size_t r = 0; r < ns.size(); ++r) {
    const int n = ns[r];
    // Request numbers (hence prompts) differ between runs and warm-ups: no prefix-cache hits
    // between them. Run 0 has exactly the oracle's prompts; speed does not depend on the ids.
    const int run_base = 1000 * static_cast<int>(r);
    if (absl::GetFlag(FLAGS_warmup)) {
      RunResult warm =
          RunOnce(**loop, n, 10000 + run_base, prompt_len, std::min(gen, 2), constraint);
      if (!warm.error.ok()) return Fail(warm.error);
      WaitForLastStep(**loop);
    }
    const serving::EngineLoad before = (*loop)->Load();
    engine::StepProfile::Reset();
    engine::StepProfile::SetEnabled(absl::GetFlag(FLAGS_profile));
    const int64_t misses_before = constraint ? (*compiled)->cache_misses() : 0;
    const int64_t hits_before = constraint ? (*compiled)->cache_hits() : 0;
    RunResult run = RunOnce(**loop, n, run_base, prompt_len, gen, constraint);
    engine::StepProfile::SetEnabled(false);
    if (!run.error.ok()) return Fail(run.error);
    WaitForLastStep(**loop);
    const serving::EngineLoad after = (*loop)->Load();
    const int64_t steps = after.steps - before.steps;
    // The engine counts the step just before its profile hook closes it: wait for that hook.
    if (absl::GetFlag(FLAGS_profile)) {
      for (int i = 0; i < 1000 && engine::StepProfile::Read().steps < steps; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
    const engine::StepProfileSnapshot prof = engine::StepProfile::Read();

    // The profile: seconds per phase, and "unaccounted" (step time that no hook claimed).
    std::string profile = "{";
    int64_t claimed_ns = 0;
    for (int p = 0; p < engine::kNumStepPhases; ++p) {
      claimed_ns += prof.phase_ns[p];
      absl::StrAppendFormat(&profile, "\"%s_s\":%.4f,",
                            engine::StepPhaseName(static_cast<engine::StepPhase>(p)),
                            prof.phase_ns[p] * 1e-9);
    }
    absl::StrAppendFormat(&profile, "\"unaccounted_s\":%.4f,\"steps_s\":%.4f,\"steps\":%d}",
                          (prof.step_ns - claimed_ns) * 1e-9, prof.step_ns * 1e-9, prof.steps);

    const double tps = run.wall_s > 0 ? run.output_tokens / run.wall_s : 0;
    std::printf(
        "{\"engine\":\"kvserve\",\"weight_dtype\":\"%s\",\"n\":%d,\"prompt_len\":%d,\"gen\":%d,"
        "\"threads\":%d,\"kv_pages\":%d,\"load_s\":%.2f,\"seconds\":%.3f,\"output_tokens\":%lld,"
        "\"tokens_per_s\":%.1f,\"ttft_ms_p50\":%.1f,\"ttft_ms_p99\":%.1f,\"itl_ms_p50\":%.2f,"
        "\"itl_ms_p99\":%.2f,\"steps\":%lld,\"preemptions\":%lld,\"prefix_hit_tokens\":%lld,"
        "\"mask_cache_misses\":%lld,\"mask_cache_hits\":%lld,\"profile\":%s}\n",
        std::string(engine::WeightDTypeName(options.weight_dtype)).c_str(), n, prompt_len, gen,
        omp_get_max_threads(), num_pages, load_s, run.wall_s,
        static_cast<long long>(run.output_tokens), tps, Percentile(run.ttft_ms, 50),
        Percentile(run.ttft_ms, 99), Percentile(run.itl_ms, 50), Percentile(run.itl_ms, 99),
        static_cast<long long>(steps),
        static_cast<long long>(after.preemptions - before.preemptions),
        static_cast<long long>(after.prefix_hit_tokens - before.prefix_hit_tokens),
        static_cast<long long>(constraint ? (*compiled)->cache_misses() - misses_before : 0),
        static_cast<long long>(constraint ? (*compiled)->cache_hits() - hits_before : 0),
        profile.c_str());
    std::fflush(stdout);
  }
  (*loop)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace kvserve

int main(int argc, char** argv) {
  // Flags may be spelled with dashes (--weight-dtype) like kvserve's own; Abseil knows the
  // underscore names, so rewrite the name part of each flag.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> rewritten;
  for (std::string& arg : args) {
    if (arg.size() > 2 && arg[0] == '-' && arg != "--") {
      const size_t eq = arg.find('=');
      for (size_t k = arg.find_first_not_of('-'); k < std::min(eq, arg.size()); ++k) {
        if (arg[k] == '-') arg[k] = '_';
      }
    }
    rewritten.push_back(arg.data());
  }
  absl::ParseCommandLine(static_cast<int>(rewritten.size()), rewritten.data());
  return kvserve::Main();
}
