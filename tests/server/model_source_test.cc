// hf: reference parsing and chat template selection (the downloads themselves are tested
// against a local fake Hub in hf_hub_test.py).
#include "server/models/model_source.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/json.h"
#include "gtest/gtest.h"
#include "server/models/hf_hub.h"

namespace kvserve::server {
namespace {

TEST(ParseHfModelRefTest, FolderAndFile) {
  absl::StatusOr<HfModelRef> folder = ParseHfModelRef("hf:meta-llama/Llama-3.2-1B");
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->owner, "meta-llama");
  EXPECT_EQ(folder->repo, "Llama-3.2-1B");
  EXPECT_EQ(folder->file, "");
  EXPECT_EQ(folder->repo_id(), "meta-llama/Llama-3.2-1B");
  absl::StatusOr<HfModelRef> file = ParseHfModelRef("hf:a_b/c.d-GGUF:sub/model-Q8_0.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->repo, "c.d-GGUF");
  EXPECT_EQ(file->file, "sub/model-Q8_0.gguf");
}

TEST(ParseHfModelRefTest, RejectsWhatCouldEscapeTheCache) {
  for (const char* bad :
       {"hf:", "hf:owner", "hf:/repo", "hf:owner/", "hf:../repo", "hf:owner/..", "hf:owner/re po",
        "hf:owner/repo:", "hf:owner/repo:../x.gguf", "hf:owner/repo:/etc/passwd",
        "hf:owner/repo:a//b", "hf:owner/repo:a?b", "hf:owner/sub/repo"}) {
    absl::StatusOr<HfModelRef> ref = ParseHfModelRef(bad);
    EXPECT_FALSE(ref.ok()) << bad;
    if (!ref.ok()) {
      EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument) << bad;
      EXPECT_NE(ref.status().message().find(bad), std::string::npos) << ref.status();
    }
  }
  EXPECT_TRUE(IsHfModelRef("hf:x/y"));
  EXPECT_FALSE(IsHfModelRef("/models/hf:x"));
}

std::optional<std::string> Template(const std::string& json) {
  absl::StatusOr<base::JsonValue> v = base::ParseJson(json);
  EXPECT_TRUE(v.ok());
  absl::StatusOr<std::optional<std::string>> t = ChatTemplateFromTokenizerConfig(*v);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : std::nullopt;
}

TEST(ChatTemplateFromTokenizerConfigTest, StringListOrAbsent) {
  EXPECT_EQ(Template(R"({"chat_template": "{{ x }}"})"), "{{ x }}");
  EXPECT_EQ(Template(R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                            {"name": "default", "template": "D"}]})"),
            "D");
  EXPECT_EQ(Template(R"({"bos_token": "<s>"})"), std::nullopt);
  EXPECT_EQ(Template(R"({"chat_template": null})"), std::nullopt);
  absl::StatusOr<base::JsonValue> no_default =
      base::ParseJson(R"({"chat_template": [{"name": "rag", "template": "R"}]})");
  ASSERT_TRUE(no_default.ok());
  EXPECT_EQ(ChatTemplateFromTokenizerConfig(*no_default).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// BOS/EOS texts for chat templates. Llama 2's vocabulary has <s> = 1 and </s> = 2.
TEST(LoadModelSourceTest, GgufBosAndEosTexts) {
  ModelSourceOptions options;
  options.load_weights = false;
  const char* shared = std::getenv("KVSERVE_SHARED");
  ASSERT_NE(shared, nullptr);
  auto loaded = LoadModelSource(std::string(shared) + "/models/llama-2-tiny-random.gguf", options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->bos_token, "<s>");
  EXPECT_EQ(loaded->eos_token, "</s>");
}

TEST(LoadModelSourceTest, FolderEosTextFromTokenizerConfig) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / "model_source_test_folder";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"eos_token": {"content": "<|im_end|>", "lstrip": false}})";
  ModelSourceOptions options;
  options.load_weights = false;
  auto loaded = LoadModelSource(dir.string(), options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->eos_token, "<|im_end|>");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvserve::server
