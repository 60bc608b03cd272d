// hf: reference parsing and chat template selection (the downloads themselves are tested
// against a local fake Hub in hf_hub_test.py).
#include "server/models/model_source.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

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

// The Hugging Face cache folder: HF_HUB_CACHE wins over HF_HOME, which wins over HOME.
TEST(HfHubCacheDirTest, EnvironmentOrder) {
  const auto keep = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
  };
  const std::optional<std::string> hub = keep("HF_HUB_CACHE"), home = keep("HF_HOME"),
                                   user = keep("HOME");
  setenv("HOME", "/home/someone", 1);
  unsetenv("HF_HOME");
  unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(HfHubCacheDir(), "/home/someone/.cache/huggingface/hub");
  setenv("HF_HOME", "/data/hf", 1);
  EXPECT_EQ(HfHubCacheDir(), "/data/hf/hub");
  setenv("HF_HUB_CACHE", "/fast/hub", 1);
  EXPECT_EQ(HfHubCacheDir(), "/fast/hub");
  for (const auto& [name, value] :
       {std::pair{"HF_HUB_CACHE", hub}, std::pair{"HF_HOME", home}, std::pair{"HOME", user}}) {
    if (value.has_value()) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
}

// A temporary Hugging Face cache laid out by hand, as huggingface_hub writes it.
class HfCacheLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("hf_cache_layout_test_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    options_.hub_cache_dir = (root_ / "hub").string();
    options_.cache_dir = (root_ / "kvserve").string();
    options_.endpoint = "http://127.0.0.1:1";  // nothing listens: any request would fail
    options_.offline = true;
    ref_ = *ParseHfModelRef("hf:some-owner/Some.Repo");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // blobs/ETAG holding `text`, snapshots/COMMIT/FILE -> ../../blobs/ETAG (one more ../ per
  // folder in FILE), refs/main = COMMIT when `write_ref`.
  void Place(const std::string& file, const std::string& text, const std::string& commit,
             const std::string& etag, bool write_ref = true) {
    const std::filesystem::path repo = root_ / "hub" / "models--some-owner--Some.Repo";
    std::filesystem::create_directories(repo / "blobs");
    std::ofstream(repo / "blobs" / etag) << text;
    const std::filesystem::path link = repo / "snapshots" / commit / file;
    std::filesystem::create_directories(link.parent_path());
    std::string target = "../../blobs/" + etag;
    for (char c : file) {
      if (c == '/') target = "../" + target;
    }
    std::filesystem::create_symlink(target, link);
    if (write_ref) {
      std::filesystem::create_directories(repo / "refs");
      std::ofstream(repo / "refs" / "main") << commit;
    }
  }

  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::filesystem::path root_;
  HfHubOptions options_;
  HfModelRef ref_;
};

TEST_F(HfCacheLayoutTest, FileOfRefsMainSnapshotIsUsedOffline) {
  Place("model.gguf", "gguf bytes", "c0ffee00", "e7a9");
  Place("sub/extra.bin", "nested", "c0ffee00", "b10b");
  absl::StatusOr<std::string> path = FetchHfFile(ref_, "model.gguf", options_);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path,
            (root_ / "hub/models--some-owner--Some.Repo/snapshots/c0ffee00/model.gguf").string());
  EXPECT_EQ(Read(*path), "gguf bytes");
  absl::StatusOr<std::string> nested = FetchHfFile(ref_, "sub/extra.bin", options_);
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(Read(*nested), "nested");
}

TEST_F(HfCacheLayoutTest, OnlyTheSnapshotRefsMainNamesCounts) {
  Place("model.gguf", "old", "01d", "aaaa");
  Place("other.gguf", "new", "0e3", "bbbb");  // refs/main now names 0e3
  EXPECT_TRUE(FetchHfFile(ref_, "other.gguf", options_).ok());
  absl::StatusOr<std::string> old = FetchHfFile(ref_, "model.gguf", options_);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(old.status().message().find("offline mode"), std::string::npos);
  EXPECT_NE(old.status().message().find("models--some-owner--Some.Repo/snapshots/0e3/model.gguf"),
            std::string::npos)
      << old.status();
}

TEST_F(HfCacheLayoutTest, FolderModelIsTheSnapshotFolder) {
  for (const char* file : {"config.json", "tokenizer.json", "model.safetensors"}) {
    Place(file, file, "abc123", std::string("etag-") + file);
  }
  absl::StatusOr<std::string> dir = ResolveHfModel(ref_, options_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, (root_ / "hub/models--some-owner--Some.Repo/snapshots/abc123").string());
}

TEST_F(HfCacheLayoutTest, OlderKvserveLayoutIsStillRead) {
  const std::filesystem::path old = root_ / "kvserve/hf/some-owner/Some.Repo/model.gguf";
  std::filesystem::create_directories(old.parent_path());
  std::ofstream(old) << "from before";
  absl::StatusOr<std::string> path = FetchHfFile(ref_, "model.gguf", options_);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(Read(*path), "from before");
}

TEST_F(HfCacheLayoutTest, OptionalFileRecordedAsMissingIsNotFound) {
  Place("config.json", "{}", "abc123", "e1");
  const std::filesystem::path marker =
      root_ / "hub/models--some-owner--Some.Repo/.no_exist/abc123/chat_template.jinja";
  std::filesystem::create_directories(marker.parent_path());
  std::ofstream(marker) << "";
  options_.offline = false;  // the marker alone must answer, with no request
  absl::StatusOr<std::string> missing =
      FetchHfFile(ref_, "chat_template.jinja", options_, /*optional=*/true);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
}

}  // namespace
}  // namespace kvserve::server
