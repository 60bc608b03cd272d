// The cost of structured output's token masks, apart from the model: a grammar compiled for a
// GGUF file's vocabulary, walked by random allowed tokens; per step, the mask computed from the
// trie (what a state's first visit costs) and taken from the cache (every later visit), in
// microseconds.
//
//   kvserve_constrain_bench --model M.gguf --gbnf bench/structured.gbnf --steps 300
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "constrain/grammar.h"
#include "constrain/token_constraint.h"
#include "constrain/token_vocabulary.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

ABSL_FLAG(std::string, model, "", "GGUF file whose tokenizer gives the vocabulary");
ABSL_FLAG(std::string, gbnf, "", "GBNF grammar file");
ABSL_FLAG(int, steps, 300, "tokens along the random walk");

namespace kvserve {
namespace {

using Clock = std::chrono::steady_clock;

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

void Report(const char* what, std::vector<double> us) {
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double u : us) sum += u;
  std::printf("\"%s_us\":{\"mean\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},", what,
              sum / us.size(), us[us.size() / 2], us[us.size() * 99 / 100], us.back());
}

int Main() {
  absl::StatusOr<std::unique_ptr<engine::GgufFile>> file =
      engine::GgufFile::Open(absl::GetFlag(FLAGS_model));
  if (!file.ok()) return std::fprintf(stderr, "%s\n", file.status().ToString().c_str()), 1;
  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer =
      engine::LoadTokenizerFromGguf(**file);
  if (!tokenizer.ok())
    return std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str()), 1;
  std::FILE* f = std::fopen(absl::GetFlag(FLAGS_gbnf).c_str(), "rb");
  if (f == nullptr) return std::fprintf(stderr, "cannot open --gbnf\n"), 1;
  std::string text;
  char buffer[4096];
  for (size_t k; (k = std::fread(buffer, 1, sizeof(buffer), f)) > 0;) text.append(buffer, k);
  std::fclose(f);
  absl::StatusOr<std::shared_ptr<const constrain::Grammar>> grammar =
      constrain::Grammar::Parse(text);
  if (!grammar.ok()) return std::fprintf(stderr, "%s\n", grammar.status().ToString().c_str()), 1;

  Clock::time_point t0 = Clock::now();
  std::vector<std::string> pieces((*tokenizer)->vocab_size());
  for (int32_t id = 0; id < (*tokenizer)->vocab_size(); ++id) {
    pieces[id] = (*tokenizer)->TokenPiece(id);
  }
  auto vocabulary = std::make_shared<const constrain::TokenVocabulary>(std::move(pieces));
  const double trie_ms = Micros(t0, Clock::now()) / 1000;
  absl::StatusOr<std::shared_ptr<const constrain::GrammarConstraint>> compiled =
      constrain::GrammarConstraint::Create(*grammar, vocabulary);
  if (!compiled.ok()) return std::fprintf(stderr, "%s\n", compiled.status().ToString().c_str()), 1;

  std::mt19937 rng(1);
  constrain::GrammarMatcher matcher(*grammar);
  std::vector<double> fresh, cached;
  std::vector<uint64_t> bits((vocabulary->size() + 63) / 64);
  int64_t allowed_total = 0;
  for (int step = 0; step < absl::GetFlag(FLAGS_steps); ++step) {
    t0 = Clock::now();
    const int64_t count = vocabulary->FillAllowed(matcher, absl::MakeSpan(bits));
    const Clock::time_point t1 = Clock::now();
    (*compiled)->MaskFor(matcher);  // into the cache
    const Clock::time_point t2 = Clock::now();
    std::shared_ptr<const std::vector<uint64_t>> mask = (*compiled)->MaskFor(matcher);
    const Clock::time_point t3 = Clock::now();
    fresh.push_back(Micros(t0, t1));
    cached.push_back(Micros(t2, t3));
    (void)t2;
    allowed_total += count;
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < vocabulary->size(); ++id) {
      if ((bits[id >> 6] >> (id & 63)) & 1) allowed.push_back(id);
    }
    if (allowed.empty()) break;
    matcher.AcceptBytes(vocabulary->piece(allowed[rng() % allowed.size()]));
  }
  std::printf("{\"vocab\":%d,\"trie_ms\":%.1f,\"steps\":%zu,\"mean_allowed\":%.0f,",
              vocabulary->size(), trie_ms, fresh.size(),
              static_cast<double>(allowed_total) / fresh.size());
  Report("uncached", fresh);
  Report("cached", cached);
  std::printf("\"states\":%lld}\n", static_cast<long long>((*compiled)->cache_misses()));
  return 0;
}

}  // namespace
}  // namespace kvserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return kvserve::Main();
}
