// LoadTokenizerFromHfJson: Hugging Face tokenizer.json -> the GgufVocabulary llama.cpp's
// converter would write, then the same tokenizer classes the GGUF loader builds.
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/json.h"
#include "engine/bpe_tokenizer.h"
#include "engine/spm_tokenizer.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_vocab.h"

namespace kvserve::engine {

using base::JsonValue;
using base::ParseJson;

namespace {

// The Split regexes of the pre-tokenizers kvserve implements, as tokenizer.json spells them.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return text.str();
}

absl::StatusOr<JsonValue> ReadJsonFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<JsonValue> json = ParseJson(absl::string_view(*text));
  if (!json.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", json.status().message()));
  }
  if (!json->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": top level is not an object"));
  }
  return json;
}

const std::string& TypeOf(const JsonValue& v) {
  static const std::string* const kNone = new std::string;
  const JsonValue* type = v.Find("type");
  return type != nullptr ? type->string : *kNone;
}

bool BoolMember(const JsonValue& v, absl::string_view key, bool fallback) {
  const JsonValue* m = v.Find(key);
  return m != nullptr && m->is_bool() ? m->boolean : fallback;
}

// The GGUF tokenizer.ggml.pre name of a byte-level pre_tokenizer, or an error describing it.
absl::StatusOr<std::string> ByteLevelPreTokenizerName(const JsonValue* pre) {
  if (pre == nullptr || pre->is_null()) {
    return absl::UnimplementedError("tokenizer.json: BPE without a pre_tokenizer is not supported");
  }
  std::vector<const JsonValue*> steps;
  if (TypeOf(*pre) == "Sequence") {
    const JsonValue* list = pre->Find("pretokenizers");
    if (list == nullptr || !list->is_array()) {
      return absl::InvalidArgumentError("tokenizer.json: Sequence pre_tokenizer without a list");
    }
    for (const JsonValue& step : list->array) steps.push_back(&step);
  } else {
    steps.push_back(pre);
  }
  if (steps.empty() || TypeOf(*steps.back()) != "ByteLevel") {
    return absl::UnimplementedError(
        "tokenizer.json: pre_tokenizer does not end with ByteLevel (kvserve supports byte-level "
        "BPE)");
  }
  const JsonValue& byte_level = *steps.back();
  if (BoolMember(byte_level, "add_prefix_space", false)) {
    return absl::UnimplementedError("tokenizer.json: ByteLevel add_prefix_space is not supported");
  }
  const bool byte_level_regex = BoolMember(byte_level, "use_regex", true);
  if (steps.size() == 1 && byte_level_regex) return std::string("gpt2");
  if (steps.size() == 2 && byte_level_regex && TypeOf(*steps[0]) == "Digits" &&
      BoolMember(*steps[0], "individual_digits", false)) {
    return std::string("smollm");
  }
  if (steps.size() == 2 && !byte_level_regex && TypeOf(*steps[0]) == "Split") {
    const JsonValue& split = *steps[0];
    const JsonValue* pattern = split.Find("pattern");
    const JsonValue* regex = pattern != nullptr ? pattern->Find("Regex") : nullptr;
    const JsonValue* behavior = split.Find("behavior");
    if (regex == nullptr || !regex->is_string()) {
      return absl::UnimplementedError(
          "tokenizer.json: Split pre_tokenizer without a Regex pattern");
    }
    if (behavior == nullptr || behavior->string != "Isolated" ||
        BoolMember(split, "invert", false)) {
      return absl::UnimplementedError(
          "tokenizer.json: Split pre_tokenizer must be behavior Isolated, invert false");
    }
    if (regex->string == kLlama3Regex) return std::string("llama-bpe");
    if (regex->string == kQwen2Regex) return std::string("qwen2");
    if (regex->string == kGpt2Regex) return std::string("gpt2");
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.json: unknown Split regex '", regex->string,
                     "' (kvserve knows the Llama 3, Qwen2 and GPT-2 patterns)"));
  }
  return absl::UnimplementedError(
      "tokenizer.json: unsupported pre_tokenizer (kvserve supports ByteLevel, Split(regex)+"
      "ByteLevel and Digits+ByteLevel)");
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...}, or null.
std::string SpecialTokenText(const JsonValue& config, absl::string_view key) {
  const JsonValue* v = config.Find(key);
  if (v == nullptr) return "";
  if (v->is_object()) v = v->Find("content");
  return v != nullptr && v->is_string() ? v->string : "";
}

// Llama-2 style: normalizer Prepend("\u2581") + Replace(" " -> "\u2581"), no pre-tokenizer.
absl::Status CheckSpmNormalizer(const JsonValue* normalizer, const JsonValue* pre) {
  if (pre != nullptr && !pre->is_null()) {
    return absl::UnimplementedError("byte_fallback BPE with a pre_tokenizer is not supported");
  }
  const JsonValue* list = normalizer != nullptr ? normalizer->Find("normalizers") : nullptr;
  bool prepend = false, replace = false;
  if (list != nullptr && list->is_array()) {
    for (const JsonValue& n : list->array) {
      const JsonValue* pattern = n.Find("pattern");
      const JsonValue* str = pattern != nullptr ? pattern->Find("String") : nullptr;
      const JsonValue* content = n.Find("content");
      const JsonValue* with = n.Find("prepend");
      if (TypeOf(n) == "Prepend" && with != nullptr && with->string == "\xE2\x96\x81") {
        prepend = true;
      } else if (TypeOf(n) == "Replace" && str != nullptr && str->string == " " &&
                 content != nullptr && content->string == "\xE2\x96\x81") {
        replace = true;
      } else {
        return absl::UnimplementedError(
            absl::StrCat("unsupported normalizer step '", TypeOf(n), "' for byte_fallback BPE"));
      }
    }
  }
  if (!prepend || !replace) {
    return absl::UnimplementedError(
        "byte_fallback BPE needs the normalizer Sequence[Prepend(\"\u2581\"), Replace(\" \", "
        "\"\u2581\")] (Llama 2 style)");
  }
  return absl::OkStatus();
}

absl::Status InvalidJson(const std::string& what) { return absl::InvalidArgumentError(what); }

// The same status with `path: ` before its message.
absl::Status WithPath(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

// The GGUF pre-tokenizer name ("" for SentencePiece-style byte-fallback vocabularies, whose
// normalizer and pre-tokenizer must be the SPM ones).
absl::StatusOr<std::string> PreTokenizerOf(const JsonValue& json, bool byte_fallback) {
  if (byte_fallback) {
    absl::Status s = CheckSpmNormalizer(json.Find("normalizer"), json.Find("pre_tokenizer"));
    if (!s.ok()) return s;
    return std::string();
  }
  // NFC (Qwen) is accepted and not applied: llama.cpp does not normalize either, and the ids
  // must equal the GGUF path's.
  const JsonValue* normalizer = json.Find("normalizer");
  if (normalizer != nullptr && !normalizer->is_null() && TypeOf(*normalizer) != "NFC") {
    return absl::UnimplementedError(
        absl::StrCat("normalizer '", TypeOf(*normalizer), "' is not supported"));
  }
  return ByteLevelPreTokenizerName(json.Find("pre_tokenizer"));
}

// model.vocab and added_tokens into texts and types, holes padded.
absl::Status ReadTokens(const JsonValue& model, const JsonValue* added, GgufVocabulary& v) {
  const JsonValue* vocab = model.Find("vocab");
  if (vocab == nullptr || !vocab->is_object()) return InvalidJson("model.vocab is not an object");
  if (added != nullptr && !added->is_array()) return InvalidJson("added_tokens is not an array");
  // Ids must be non-negative integers; the largest one sizes the vocabulary.
  const auto check_id = [](const JsonValue* id) -> int64_t {
    if (id == nullptr || !id->is_number()) return -1;
    const double d = id->number;
    return d >= 0 && d < (1 << 30) && d == static_cast<int64_t>(d) ? static_cast<int64_t>(d) : -1;
  };
  int64_t n = 0;
  for (const auto& [text, id] : vocab->object) {
    const int64_t i = check_id(&id);
    if (i < 0) return InvalidJson(absl::StrCat("model.vocab id of '", text, "' is not a valid id"));
    n = std::max(n, i + 1);
  }
  if (added != nullptr) {
    for (const JsonValue& t : added->array) {
      const int64_t i = check_id(t.Find("id"));
      const JsonValue* content = t.Find("content");
      if (i < 0 || content == nullptr || !content->is_string()) {
        return InvalidJson("added_tokens entry without a valid id and content");
      }
      n = std::max(n, i + 1);
    }
  }
  if (n == 0) return InvalidJson("empty vocabulary");
  v.texts.assign(n, "");
  v.types.assign(n, TokenType::kUnused);
  v.scores.assign(n, 0.0f);
  for (const auto& [text, id] : vocab->object) {
    v.texts[static_cast<size_t>(id.number)] = text;
    v.types[static_cast<size_t>(id.number)] = TokenType::kNormal;
  }
  if (added != nullptr) {
    for (const JsonValue& t : added->array) {
      const size_t i = static_cast<size_t>(t.Find("id")->number);
      v.texts[i] = t.Find("content")->string;
      v.types[i] = BoolMember(t, "special", false) ? TokenType::kControl : TokenType::kUserDefined;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    // Holes in the id space are padded as llama.cpp's converter pads them.
    if (v.types[i] == TokenType::kUnused) v.texts[i] = absl::StrCat("[PAD", i, "]");
    if (v.texts[i].empty()) v.texts[i] = absl::StrCat("[EMPTY_", i, "]");
  }
  return absl::OkStatus();
}

// SentencePiece conventions, as llama.cpp's converter writes them: <0xXX> byte tokens, the
// unknown token, and spaces shown as U+2581 with one prepended.
void MarkSpmTokens(const JsonValue& model, GgufVocabulary& v) {
  const int64_t n = static_cast<int64_t>(v.texts.size());
  v.add_space_prefix = true;
  const JsonValue* unk = model.Find("unk_token");
  for (int64_t i = 0; i < n; ++i) {
    const std::string& t = v.texts[i];
    if (v.types[i] == TokenType::kNormal && t.size() == 6 && t.rfind("<0x", 0) == 0 &&
        t[5] == '>') {
      v.types[i] = TokenType::kByte;
    }
    if (unk != nullptr && unk->is_string() && t == unk->string) {
      v.types[i] = TokenType::kUnknown;
      v.unk_id = static_cast<int32_t>(i);
    }
  }
}

// model.merges, as "a b" strings or ["a", "b"] pairs.
absl::Status ReadMerges(const JsonValue& model, GgufVocabulary& v) {
  const JsonValue* merges = model.Find("merges");
  if (merges == nullptr || !merges->is_array()) return InvalidJson("model.merges is not an array");
  v.merges.reserve(merges->array.size());
  for (const JsonValue& m : merges->array) {
    if (m.is_string()) {
      v.merges.push_back(m.string);
    } else if (m.is_array() && m.array.size() == 2 && m.array[0].is_string() &&
               m.array[1].is_string()) {
      v.merges.push_back(absl::StrCat(m.array[0].string, " ", m.array[1].string));
    } else {
      return InvalidJson(absl::StrCat("model.merges entry ", v.merges.size(),
                                      " is neither \"a b\" nor [\"a\", \"b\"]"));
    }
  }
  return absl::OkStatus();
}

// SPM merges the adjacent pair whose result scores highest; scoring each token by minus the
// rank of the first merge that forms it makes that BPE's lowest-rank-first order.
void ScoreSpmMerges(GgufVocabulary& v) {
  const size_t n = v.texts.size();
  const TokenIndex index = BuildTokenIndex(v.texts);
  std::vector<bool> scored(n, false);
  for (size_t rank = 0; rank < v.merges.size(); ++rank) {
    const std::string& m = v.merges[rank];
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos) continue;
    const int32_t id = FindToken(index, m.substr(0, space) + m.substr(space + 1));
    if (id >= 0 && !scored[id]) {
      scored[id] = true;
      v.scores[id] = -static_cast<float>(rank);
    }
  }
}

// bos_token, eos_token and add_bos_token of tokenizer_config.json.
absl::Status ApplyTokenizerConfig(const std::string& tokenizer_config_path, GgufVocabulary& v) {
  absl::StatusOr<JsonValue> config = ReadJsonFile(tokenizer_config_path);
  if (!config.ok()) return config.status();
  const TokenIndex index = BuildTokenIndex(v.texts);
  const auto token_id = [&](absl::string_view key) {
    const std::string text = SpecialTokenText(*config, key);
    return text.empty() ? -1 : FindToken(index, text);
  };
  v.bos_id = token_id("bos_token");
  v.eos_id = token_id("eos_token");
  if (v.eos_id >= 0) v.eos_ids.insert(v.eos_id);
  const JsonValue* add_bos = config->Find("add_bos_token");
  v.add_bos = add_bos != nullptr && add_bos->is_bool() ? add_bos->boolean : v.bos_id >= 0;
  return absl::OkStatus();
}

// tokenizer.json as the vocabulary llama.cpp's converter would write (errors without the path).
absl::StatusOr<GgufVocabulary> VocabularyFromTokenizerJson(const JsonValue& json) {
  const JsonValue* model = json.Find("model");
  if (model == nullptr || !model->is_object()) return InvalidJson("no model object");
  if (TypeOf(*model) != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat("model type '", TypeOf(*model), "' (kvserve supports BPE)"));
  }
  const bool byte_fallback = BoolMember(*model, "byte_fallback", false);
  absl::StatusOr<std::string> pre = PreTokenizerOf(json, byte_fallback);
  if (!pre.ok()) return pre.status();
  GgufVocabulary v;
  v.model = byte_fallback ? "llama" : "gpt2";
  v.pre = *pre;
  if (absl::Status s = ReadTokens(*model, json.Find("added_tokens"), v); !s.ok()) return s;
  if (byte_fallback) MarkSpmTokens(*model, v);
  if (absl::Status s = ReadMerges(*model, v); !s.ok()) return s;
  if (byte_fallback) ScoreSpmMerges(v);
  if (const JsonValue* ignore = model->Find("ignore_merges"); ignore != nullptr) {
    if (!ignore->is_bool()) return InvalidJson("model.ignore_merges is not a boolean");
    v.ignore_merges = ignore->boolean;
  }
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromHfJson(
    const std::string& tokenizer_json_path, const std::string& tokenizer_config_path) {
  absl::StatusOr<JsonValue> json = ReadJsonFile(tokenizer_json_path);
  if (!json.ok()) return json.status();
  absl::StatusOr<GgufVocabulary> v = VocabularyFromTokenizerJson(*json);
  if (!v.ok()) return WithPath(tokenizer_json_path, v.status());
  if (!tokenizer_config_path.empty()) {
    if (absl::Status s = ApplyTokenizerConfig(tokenizer_config_path, *v); !s.ok()) return s;
  }
  PromoteSpecialTokensByText(&*v);
  if (v->model == "llama") {  // byte fallback
    absl::StatusOr<std::unique_ptr<SpmTokenizer>> t = SpmTokenizer::Create(*std::move(v));
    if (!t.ok()) return t.status();
    return std::unique_ptr<Tokenizer>(std::move(*t));
  }
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> t = BpeTokenizer::Create(*std::move(v));
  if (!t.ok()) return t.status();
  return std::unique_ptr<Tokenizer>(std::move(*t));
}

}  // namespace kvserve::engine
