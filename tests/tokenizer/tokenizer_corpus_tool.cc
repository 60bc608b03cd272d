// Test driver: tokenizes many strings with kvserve's tokenizer and checks decoding.
//   tokenizer_corpus_tool MODEL.gguf|tokenizer.json STRINGS.hex OUT.tsv [--bench]
// A path ending in ".json" is loaded with LoadTokenizerFromHfJson, with the tokenizer_config.json
// next to it when there is one.
// STRINGS.hex holds one hex-encoded UTF-8 string per line. OUT.tsv gets, per string:
//   comma-separated ids <TAB> 1 if Decode(ids) == string else 0 <TAB> 1 if the streamed deltas
//   concatenate to Decode(ids) with invalid UTF-8 replaced (base::SanitizeUtf8) else 0
// and a last line "#timing <bytes> <lines_seconds> <whole_text_seconds>" where the whole text is
// all strings joined by "\n", encoded in one call (best of 3; 0 without --bench).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "base/utf8.h"
#include "engine/detokenizer.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  const bool bench = argc == 5 && std::string(argv[4]) == "--bench";
  if (argc != 4 && !bench) {
    std::fprintf(stderr, "usage: %s MODEL.gguf STRINGS.hex OUT.tsv [--bench]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1];
  absl::StatusOr<std::unique_ptr<kvserve::engine::Tokenizer>> tokenizer;
  if (absl::EndsWith(model, ".json")) {
    const size_t slash = model.rfind('/');
    const std::string config =
        (slash == std::string::npos ? "" : model.substr(0, slash + 1)) + "tokenizer_config.json";
    tokenizer = kvserve::engine::LoadTokenizerFromHfJson(
        model, std::ifstream(config).good() ? config : std::string());
  } else {
    auto file = kvserve::engine::GgufFile::Open(model);
    if (!file.ok()) {
      std::fprintf(stderr, "%s\n", std::string(file.status().message()).c_str());
      return 1;
    }
    tokenizer = kvserve::engine::LoadTokenizerFromGguf(**file);
  }
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  const kvserve::engine::Tokenizer& tok = **tokenizer;
  std::vector<std::string> strings;
  std::ifstream in(argv[2]);
  for (std::string line; std::getline(in, line);) strings.push_back(absl::HexStringToBytes(line));

  std::vector<std::vector<int32_t>> ids(strings.size());
  const auto t0 = Clock::now();
  for (size_t i = 0; i < strings.size(); ++i) ids[i] = tok.Encode(strings[i], false);
  const double lines_seconds = Seconds(t0, Clock::now());

  std::ofstream out(argv[3]);
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string decoded = tok.Decode(ids[i]);
    kvserve::engine::Detokenizer detok(tok);
    std::string streamed;
    for (int32_t id : ids[i]) streamed += detok.Add(id);
    streamed += detok.Finish();
    out << absl::StrJoin(ids[i], ",") << '\t' << (decoded == strings[i]) << '\t'
        << (streamed == kvserve::base::SanitizeUtf8(decoded)) << '\n';
  }
  const std::string whole = absl::StrJoin(strings, "\n");
  double whole_seconds = bench ? 1e30 : 0;
  for (int r = 0; r < (bench ? 3 : 0); ++r) {
    const auto a = Clock::now();
    const std::vector<int32_t> all = tok.Encode(whole, false);
    whole_seconds = std::min(whole_seconds, Seconds(a, Clock::now()));
    if (all.empty() && !whole.empty()) return 1;
  }
  out << "#timing " << whole.size() << ' ' << lines_seconds << ' ' << whole_seconds << '\n';
  return out ? 0 : 1;
}
