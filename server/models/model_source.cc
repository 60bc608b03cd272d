#include "server/models/model_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/json.h"
#include "base/log.h"
#include "server/models/hf_hub.h"

namespace kvserve::server {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<base::JsonValue> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path.string(), "'"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<base::JsonValue> json = base::ParseJson(text.str());
  if (!json.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", json.status().message()));
  }
  return json;
}

absl::Status LoadGguf(const ModelSourceOptions& options, LoadedModel& m) {
  absl::StatusOr<std::unique_ptr<engine::GgufFile>> file = engine::GgufFile::Open(m.path);
  if (!file.ok()) return file.status();
  m.gguf = std::shared_ptr<const engine::GgufFile>(std::move(*file));
  const engine::GgufFile& gguf = *m.gguf;
  if (options.load_weights) {
    engine::LoadOptions load;
    load.weight_dtype = options.weight_dtype;
    absl::StatusOr<std::unique_ptr<engine::LlamaModel>> model =
        engine::LlamaModel::Load(m.gguf, load);
    if (!model.ok()) return model.status();
    m.model = std::move(*model);
  }
  absl::StatusOr<std::string> name = gguf.GetString("general.name");
  m.name = name.ok() ? *name : fs::path(m.path).stem().string();

  absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer =
      engine::LoadTokenizerFromGguf(gguf);
  if (tokenizer.ok()) {
    m.tokenizer = std::move(*tokenizer);
    m.eos_ids = m.tokenizer->eos_ids();
    m.bos_id = m.tokenizer->bos_id();
  } else {
    // Served on token ids: EOS and BOS straight from the metadata.
    m.tokenizer_status = tokenizer.status();
    if (absl::StatusOr<int64_t> eos = gguf.GetInt("tokenizer.ggml.eos_token_id"); eos.ok()) {
      m.eos_ids.insert(static_cast<int32_t>(*eos));
    }
    if (absl::StatusOr<int64_t> bos = gguf.GetInt("tokenizer.ggml.bos_token_id"); bos.ok()) {
      m.bos_id = static_cast<int32_t>(*bos);
    }
  }
  // The BOS/EOS texts for chat templates, from the vocabulary the metadata ids point into.
  absl::StatusOr<std::vector<std::string>> tokens = gguf.GetStringArray("tokenizer.ggml.tokens");
  const auto token_text = [&](const char* key) -> std::string {
    absl::StatusOr<int64_t> id = gguf.GetInt(key);
    if (!id.ok() || !tokens.ok() || *id < 0 || *id >= static_cast<int64_t>(tokens->size())) {
      return "";
    }
    return (*tokens)[*id];
  };
  m.bos_token = m.tokenizer != nullptr && m.bos_id >= 0 ? m.tokenizer->TokenText(m.bos_id)
                                                        : token_text("tokenizer.ggml.bos_token_id");
  m.eos_token = token_text("tokenizer.ggml.eos_token_id");
  if (gguf.FindMetadata("tokenizer.chat_template") != nullptr) {
    absl::StatusOr<std::string> source = gguf.GetString("tokenizer.chat_template");
    if (!source.ok()) return source.status();
    m.chat_template_source = std::move(*source);
  }
  return absl::OkStatus();
}

absl::Status LoadFolder(const ModelSourceOptions& options, LoadedModel& m) {
  const fs::path dir(m.path);
  if (options.load_weights) {
    absl::StatusOr<std::unique_ptr<engine::HfModel>> hf = engine::HfModel::Open(m.path);
    if (!hf.ok()) return hf.status();
    m.hf = std::shared_ptr<const engine::HfModel>(std::move(*hf));
    engine::LoadOptions load;
    load.weight_dtype = options.weight_dtype;
    absl::StatusOr<std::unique_ptr<engine::LlamaModel>> model =
        engine::LlamaModel::Load(m.hf, load);
    if (!model.ok()) return model.status();
    m.model = std::move(*model);
    // generation_config.json's list (Llama 3 ends turns with <|eot_id|>), then the tokenizer's.
    m.eos_ids = m.hf->eos_ids();
    if (m.name.empty()) m.name = m.hf->config().name;
  }
  if (m.name.empty()) {
    fs::path name_path = dir;
    if (!name_path.has_filename()) name_path = name_path.parent_path();
    m.name = name_path.filename().string();
  }

  const fs::path tokenizer_json = dir / "tokenizer.json";
  const fs::path tokenizer_config = dir / "tokenizer_config.json";
  const bool has_config = fs::exists(tokenizer_config);
  if (fs::exists(tokenizer_json)) {
    absl::StatusOr<std::unique_ptr<engine::Tokenizer>> tokenizer = engine::LoadTokenizerFromHfJson(
        tokenizer_json.string(), has_config ? tokenizer_config.string() : "");
    if (tokenizer.ok()) {
      m.tokenizer = std::move(*tokenizer);
      for (int32_t id : m.tokenizer->eos_ids()) m.eos_ids.insert(id);
      m.bos_id = m.tokenizer->bos_id();
      if (m.bos_id >= 0) m.bos_token = m.tokenizer->TokenText(m.bos_id);
    } else {
      m.tokenizer_status = tokenizer.status();
    }
  } else {
    m.tokenizer_status = absl::NotFoundError(
        absl::StrCat("the Hugging Face folder '", m.path, "' has no tokenizer.json"));
  }

  if (has_config) {
    absl::StatusOr<base::JsonValue> config = ReadJsonFile(tokenizer_config);
    if (!config.ok()) return config.status();
    const base::JsonValue* eos = config->Find("eos_token");  // a string or {"content": ...}
    if (eos != nullptr && eos->is_object()) eos = eos->Find("content");
    if (eos != nullptr && eos->is_string()) m.eos_token = eos->string;
    absl::StatusOr<std::optional<std::string>> source = ChatTemplateFromTokenizerConfig(*config);
    if (!source.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(tokenizer_config.string(), ": ", source.status().message()));
    }
    m.chat_template_source = std::move(*source);
  }
  if (!m.chat_template_source.has_value() && fs::exists(dir / "chat_template.jinja")) {
    std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    m.chat_template_source = text.str();
  }
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<TextCodec> LoadedModel::TakeCodec(int32_t vocab_size) {
  if (tokenizer != nullptr) return std::make_unique<TokenizerCodec>(std::move(tokenizer), eos_ids);
  return std::make_unique<TokenIdsOnlyCodec>(vocab_size, bos_id, eos_ids);
}

absl::StatusOr<std::optional<std::string>> ChatTemplateFromTokenizerConfig(
    const base::JsonValue& config) {
  const base::JsonValue* v = config.Find("chat_template");
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (v->is_string()) return std::optional<std::string>(v->string);
  if (!v->is_array()) {
    return absl::InvalidArgumentError("chat_template is neither a string nor a list");
  }
  for (const base::JsonValue& entry : v->array) {
    const base::JsonValue* name = entry.Find("name");
    const base::JsonValue* source = entry.Find("template");
    if (name == nullptr || !name->is_string() || source == nullptr || !source->is_string()) {
      return absl::InvalidArgumentError(
          "chat_template list entries must be {\"name\": ..., \"template\": ...}");
    }
    if (name->string == "default") return std::optional<std::string>(source->string);
  }
  return absl::InvalidArgumentError("chat_template list has no entry named \"default\"");
}

namespace {

// OWNER/REPO: one slash, two parts ParseHfModelRef accepts, no ':' (hf:OWNER/REPO:FILE is the
// way to name a file).
bool LooksLikeRepoId(const std::string& spec) {
  if (spec.find(':') != std::string::npos || std::count(spec.begin(), spec.end(), '/') != 1) {
    return false;
  }
  return ParseHfModelRef("hf:" + spec).ok();
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModelSource(const std::string& spec,
                                            const ModelSourceOptions& options) {
  if (spec.empty()) {
    return absl::InvalidArgumentError(
        "--model is required: a GGUF file, a Hugging Face folder, or hf:OWNER/REPO[:FILE.gguf]");
  }
  LoadedModel m;
  m.spec = spec;
  m.path = spec;
  std::error_code ec;
  // `OWNER/REPO` that is no local path names a Hub repository, as vLLM reads it.
  const bool repo_id = !IsHfModelRef(spec) && !fs::exists(spec, ec) && LooksLikeRepoId(spec);
  if (repo_id) {
    base::Log(absl::StrCat("--model '", spec, "' is no local file or folder: loading it as hf:",
                           spec, " (a Hugging Face repository)"));
  }
  if (IsHfModelRef(spec) || repo_id) {
    absl::StatusOr<HfModelRef> ref = ParseHfModelRef(repo_id ? "hf:" + spec : spec);
    if (!ref.ok()) return ref.status();
    absl::StatusOr<std::string> path =
        ResolveHfModel(*ref, HfHubOptions::FromEnvironment(options.offline),
                       /*include_weights=*/options.load_weights);
    if (!path.ok() && repo_id) {
      return absl::Status(path.status().code(),
                          absl::StrCat("--model '", spec, "': no such file or folder, and as hf:",
                                       spec, ": ", path.status().message()));
    }
    if (!path.ok()) return path.status();
    m.path = *path;
    if (ref->file.empty()) m.name = ref->repo_id();
  }
  if (!fs::exists(m.path, ec)) {
    return absl::NotFoundError(absl::StrCat("--model '", spec, "': no such file or folder"));
  }
  if (fs::is_directory(m.path, ec)) {
    m.format = LoadedModel::Format::kHfFolder;
    if (absl::Status s = LoadFolder(options, m); !s.ok()) return s;
  } else {
    m.format = LoadedModel::Format::kGguf;
    if (absl::Status s = LoadGguf(options, m); !s.ok()) return s;
  }
  return m;
}

}  // namespace kvserve::server
