// LoadTokenizerFromHfJson on small hand-written tokenizer.json files: vocabulary, both merge
// spellings, added tokens, BOS from tokenizer_config.json, and the errors for unsupported parts.
// Expected ids are worked out by hand from the tiny vocabularies below.
#include <cstdlib>
#include <fstream>
#include <string>

#include "engine/tokenizer.h"
#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

// Llama 3's Split regex, JSON-escaped as tokenizer.json stores it.
constexpr char kLlama3RegexJson[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+)";

std::string WriteFile(const std::string& name, const std::string& text) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/kvserve_hf_" + name;
  std::ofstream(path) << text;
  return path;
}

std::string TokenizerJson(const std::string& regex) {
  // "Ġ" (U+0120) is how ByteLevel shows a space.
  return std::string(R"({"version": "1.0", "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": ")") +
         regex + R"("}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
    "added_tokens": [
      {"id": 5, "content": "<|x|>", "special": true},
      {"id": 7, "content": "<u>", "special": false}],
    "model": {"type": "BPE", "byte_fallback": false, "ignore_merges": false,
      "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120ab": 4},
      "merges": [["a", "b"], "\u0120 ab"]}})";
}

TEST(TokenizerHfTest, LoadsByteLevelBpe) {
  const std::string json = WriteFile("tok.json", TokenizerJson(kLlama3RegexJson));
  const std::string config =
      WriteFile("cfg.json", R"({"bos_token": {"content": "<|x|>"}, "eos_token": "<u>",
                               "add_bos_token": true})");
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizerFromHfJson(json, config);
  ASSERT_TRUE(t.ok()) << t.status();
  const Tokenizer& tok = **t;
  EXPECT_EQ(tok.vocab_size(), 8);  // id 6 is a hole
  EXPECT_EQ(tok.TokenText(6), "[PAD6]");
  EXPECT_EQ(tok.GetTokenType(6), TokenType::kUnused);
  EXPECT_EQ(tok.GetTokenType(5), TokenType::kControl);
  EXPECT_EQ(tok.GetTokenType(7), TokenType::kUserDefined);
  EXPECT_EQ(tok.GetTokenType(2), TokenType::kNormal);
  EXPECT_EQ(tok.bos_id(), 5);
  EXPECT_TRUE(tok.IsEos(7));
  EXPECT_TRUE(tok.add_bos());
  // Words "ab", " ab"; then the two added tokens matched in the text.
  EXPECT_EQ(tok.Encode("ab ab<|x|><u>", false), (std::vector<int32_t>{2, 4, 5, 7}));
  EXPECT_EQ(tok.Encode("ab", true), (std::vector<int32_t>{5, 2}));
  EXPECT_EQ(tok.Decode(std::vector<int32_t>{2, 4, 5, 7}), "ab ab<u>");
}

TEST(TokenizerHfTest, WithoutConfigThereIsNoBos) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t =
      LoadTokenizerFromHfJson(WriteFile("tok2.json", TokenizerJson(kLlama3RegexJson)));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->bos_id(), -1);
  EXPECT_EQ((*t)->Encode("ab", true), (std::vector<int32_t>{2}));
}

TEST(TokenizerHfTest, UnknownRegexIsNamed) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t =
      LoadTokenizerFromHfJson(WriteFile("tok3.json", TokenizerJson("\\\\w+")));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(std::string(t.status().message()).find("unknown Split regex '\\w+'"), std::string::npos)
      << t.status();
}

TEST(TokenizerHfTest, ErrorsNameTheFileAndProblem) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> missing =
      LoadTokenizerFromHfJson("/nonexistent/tokenizer.json");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  const std::string bad = WriteFile("bad.json", "{\"model\": [1,}");
  absl::StatusOr<std::unique_ptr<Tokenizer>> malformed = LoadTokenizerFromHfJson(bad);
  ASSERT_FALSE(malformed.ok());
  EXPECT_NE(std::string(malformed.status().message()).find(bad + ": JSON:"), std::string::npos)
      << malformed.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> unigram = LoadTokenizerFromHfJson(
      WriteFile("uni.json", R"({"model": {"type": "Unigram", "vocab": []}})"));
  ASSERT_FALSE(unigram.ok());
  EXPECT_NE(std::string(unigram.status().message()).find("model type 'Unigram'"),
            std::string::npos);
}

}  // namespace
}  // namespace kvserve::engine
