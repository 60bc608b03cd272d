#include "server/offline_commands.h"

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
#include "engine/gguf.h"
#include "engine/kv_page_pool.h"
#include "engine/llama_model.h"
#include "engine/tokenizer.h"

ABSL_FLAG(std::string, model, "", "Model file (GGUF)");
ABSL_FLAG(std::string, prompt_ids, "", "Prompt as comma-separated token ids, e.g. 1,450,22");
ABSL_FLAG(std::string, prompt, "",
          "Prompt text (tokenized with the model's BOS); instead of --prompt-ids");
ABSL_FLAG(bool, add_special_tokens, false, "tokenize: prepend BOS when the model asks for it");
ABSL_FLAG(int, max_tokens, 16, "Number of tokens to generate");
ABSL_FLAG(std::string, weight_dtype, "auto",
          "Weights in memory: f32, bf16, or auto (bf16 where the CPU has AVX-512 BF16)");
ABSL_FLAG(bool, ignore_eos, false, "Keep generating past the model's end-of-sequence token");
ABSL_FLAG(std::string, out, "", "Output file (logits: raw little-endian f32, rows x vocab)");

namespace kvserve::server {
namespace {

using engine::ForwardBatch;
using engine::ForwardRun;
using engine::GgufFile;
using engine::KvPagePool;
using engine::LlamaModel;

constexpr int kPageSize = 16;

absl::StatusOr<engine::WeightDType> ParseWeightDType(const std::string& s) {
  if (s == "auto") return engine::DefaultWeightDType();
  if (s == "f32") return engine::WeightDType::kF32;
  if (s == "bf16") {
    if (!engine::CpuFeatures().avx512_bf16) {
      std::fprintf(stderr, "kvserve: warning: this CPU has no AVX-512 BF16; bf16 weights are slow\n");
    }
    return engine::WeightDType::kBF16;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--weight-dtype must be f32, bf16 or auto, not '", s, "'"));
}

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& s) {
  if (s.empty()) return absl::InvalidArgumentError("--prompt-ids is empty; give e.g. 1,450,22");
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: '", part, "' is not a token id"));
    }
    ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LoadModel() {
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) return absl::InvalidArgumentError("--model is required");
  absl::StatusOr<engine::WeightDType> dtype = ParseWeightDType(absl::GetFlag(FLAGS_weight_dtype));
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  if (!file.ok()) return file.status();
  engine::LoadOptions options;
  options.weight_dtype = *dtype;
  absl::StatusOr<std::unique_ptr<LlamaModel>> model =
      LlamaModel::Load(std::shared_ptr<const GgufFile>(std::move(*file)), options);
  if (model.ok()) {
    const engine::ModelConfig& c = (*model)->config();
    std::fprintf(stderr,
                 "kvserve: model %s (%s): %lld layers, hidden %lld, heads %lld/%lld, vocab %lld, "
                 "weights %s\n",
                 c.name.c_str(), c.architecture.c_str(), (long long)c.num_layers,
                 (long long)c.hidden_size, (long long)c.num_heads, (long long)c.num_kv_heads,
                 (long long)c.vocab_size,
                 std::string(engine::WeightDTypeName(options.weight_dtype)).c_str());
  }
  return model;
}

// A pool just big enough for one sequence of `tokens` positions, pages in order.
absl::StatusOr<std::unique_ptr<KvPagePool>> MakePool(const LlamaModel& model, int64_t tokens,
                                                     std::vector<int32_t>* page_table) {
  const int pages = static_cast<int>((tokens + kPageSize - 1) / kPageSize);
  page_table->resize(pages);
  for (int i = 0; i < pages; ++i) (*page_table)[i] = i;
  return KvPagePool::Create(model.KvShape(kPageSize, pages, engine::KvDType::kF32));
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvserve: error: %s\n", std::string(s.message()).c_str());
  return 1;
}

int32_t Argmax(const float* row, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (row[i] > row[best]) best = static_cast<int32_t>(i);
  }
  return best;
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

absl::StatusOr<std::unique_ptr<engine::Tokenizer>> LoadTokenizer(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("--model is required");
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  if (!file.ok()) return file.status();
  return engine::LoadTokenizerFromGguf(**file);
}

}  // namespace

int RunTokenize(const std::vector<char*>& positional) {
  if (positional.size() != 1) {
    return Fail(absl::InvalidArgumentError("usage: kvserve tokenize --model FILE \"text\""));
  }
  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer =
      LoadTokenizer(absl::GetFlag(FLAGS_model));
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  const std::vector<int32_t> ids =
      (*tokenizer)->Encode(positional[0], absl::GetFlag(FLAGS_add_special_tokens));
  std::printf("{\"ids\":[%s]}\n", absl::StrJoin(ids, ",").c_str());
  return 0;
}

int RunGenerate(const std::vector<char*>& positional) {
  if (!positional.empty()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[0], "'")));
  }
  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer =
      LoadTokenizer(absl::GetFlag(FLAGS_model));
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  const std::string prompt_text = absl::GetFlag(FLAGS_prompt);
  if (!prompt_text.empty() && !absl::GetFlag(FLAGS_prompt_ids).empty()) {
    return Fail(absl::InvalidArgumentError("give --prompt or --prompt-ids, not both"));
  }
  absl::StatusOr<std::vector<int32_t>> prompt =
      prompt_text.empty() ? ParseIds(absl::GetFlag(FLAGS_prompt_ids))
                          : absl::StatusOr<std::vector<int32_t>>(
                                (*tokenizer)->Encode(prompt_text, /*add_special_tokens=*/true));
  if (!prompt.ok()) return Fail(prompt.status());
  if (prompt->empty()) return Fail(absl::InvalidArgumentError("the prompt has no tokens"));
  const int max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (max_tokens < 0) return Fail(absl::InvalidArgumentError("--max-tokens must be >= 0"));
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LoadModel();
  if (!model.ok()) return Fail(model.status());
  const engine::ModelConfig& c = (*model)->config();
  const int64_t total = static_cast<int64_t>(prompt->size()) + max_tokens;
  if (total > c.context_length) {
    return Fail(absl::OutOfRangeError(absl::StrCat("prompt (", prompt->size(), " tokens) + max_tokens (",
                                                   max_tokens, ") exceeds the context length ",
                                                   c.context_length)));
  }
  std::vector<int32_t> page_table;
  absl::StatusOr<std::unique_ptr<KvPagePool>> pool = MakePool(**model, total, &page_table);
  if (!pool.ok()) return Fail(pool.status());

  std::vector<int32_t> generated;
  std::vector<int32_t> step_tokens = *prompt;
  int32_t position = 0;
  std::vector<float> logits;
  const bool ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
  while (static_cast<int>(generated.size()) < max_tokens) {
    ForwardBatch batch;
    batch.runs.push_back(ForwardRun{step_tokens, position, page_table, engine::LogitsMode::kLast});
    absl::Status s = (*model)->Forward(batch, **pool, &logits);
    if (!s.ok()) return Fail(s);
    position += static_cast<int32_t>(step_tokens.size());
    const int32_t next = Argmax(logits.data(), c.vocab_size);
    generated.push_back(next);
    if (!ignore_eos && (*tokenizer)->IsEos(next)) break;
    step_tokens = {next};
  }
  // The generated text continues the prompt, so an SPM leading space is kept.
  engine::Detokenizer detokenizer(**tokenizer, /*continuation=*/true);
  std::string text;
  for (int32_t id : generated) text += detokenizer.Add(id);
  text += detokenizer.Finish();
  std::printf("{\"ids\":[%s],\"text\":%s}\n", absl::StrJoin(generated, ",").c_str(),
              JsonString(text).c_str());
  return 0;
}

int RunLogits(const std::vector<char*>& positional) {
  if (!positional.empty()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[0], "'")));
  }
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) return Fail(absl::InvalidArgumentError("--out is required"));
  absl::StatusOr<std::vector<int32_t>> prompt = ParseIds(absl::GetFlag(FLAGS_prompt_ids));
  if (!prompt.ok()) return Fail(prompt.status());
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LoadModel();
  if (!model.ok()) return Fail(model.status());
  if (static_cast<int64_t>(prompt->size()) > (*model)->config().context_length) {
    return Fail(absl::OutOfRangeError("prompt is longer than the context length"));
  }
  std::vector<int32_t> page_table;
  absl::StatusOr<std::unique_ptr<KvPagePool>> pool =
      MakePool(**model, static_cast<int64_t>(prompt->size()), &page_table);
  if (!pool.ok()) return Fail(pool.status());
  ForwardBatch batch;
  batch.runs.push_back(ForwardRun{*prompt, 0, page_table, engine::LogitsMode::kAll});
  std::vector<float> logits;
  absl::Status s = (*model)->Forward(batch, **pool, &logits);
  if (!s.ok()) return Fail(s);
  std::ofstream out(out_path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(logits.data()), logits.size() * sizeof(float));
  if (!out) return Fail(absl::UnavailableError(absl::StrCat("cannot write ", out_path)));
  return 0;
}

}  // namespace kvserve::server
