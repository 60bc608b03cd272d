// Unit tests for the tokenizers on tiny hand-made vocabularies whose expected ids are derived
// by hand from the algorithms' definitions (the corpus-wide comparison against llama.cpp is
// tokenizer_oracle_test.py).
#include "engine/tokenizer.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/bpe_pretokenizer.h"
#include "engine/detokenizer.h"
#include "engine/gguf.h"
#include "engine/unicode.h"
#include "gtest/gtest.h"
#include "tests/engine/gguf_test_writer.h"

namespace kvserve::engine {
namespace {

TEST(UnicodeTest, ByteToUnicodeIsGpt2Mapping) {
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");   // U+0120 "Ġ"
  EXPECT_EQ(ByteToUnicode('\n'), "\xC4\x8A");  // U+010A "Ċ"
  EXPECT_EQ(ByteToUnicode('A'), "A");
  for (int b = 0; b < 256; ++b) {
    const std::vector<uint32_t> cps = DecodeUtf8(ByteToUnicode(static_cast<uint8_t>(b)));
    ASSERT_EQ(cps.size(), 1u);
    EXPECT_EQ(UnicodeToByte(cps[0]), b);
  }
}

std::vector<std::string> Words(BpePreTokenizer kind, const std::string& text) {
  const std::vector<uint32_t> cps = DecodeUtf8(text);
  std::vector<std::string> words;
  size_t start = 0;
  for (size_t len : PreTokenize(kind, cps)) {
    std::string w;
    for (size_t i = start; i < start + len; ++i) AppendUtf8(cps[i], &w);
    words.push_back(w);
    start += len;
  }
  return words;
}

TEST(BpePreTokenizerTest, Llama3Splits) {
  using V = std::vector<std::string>;
  EXPECT_EQ(Words(BpePreTokenizer::kLlama3, "Hello world's 1234567!!\n\n  x"),
            (V{"Hello", " world", "'s", " ", "123", "456", "7", "!!\n\n", " ", " x"}));
  EXPECT_EQ(Words(BpePreTokenizer::kQwen2, "ab 12"), (V{"ab", " ", "1", "2"}));
  EXPECT_EQ(Words(BpePreTokenizer::kGpt2, "ab  12 ?!x"), (V{"ab", " ", " 12", " ?!", "x"}));
  EXPECT_EQ(Words(BpePreTokenizer::kSmolLm, "a 12"), (V{"a", " ", "1", "2"}));
}

using testing::Array;
using testing::GgufTestWriter;
using testing::I32;
using testing::Str;
using testing::U32;

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;
  int32_t Add(const std::string& text, TokenType type, float score = 0) {
    tokens.push_back(text);
    types.push_back(static_cast<int32_t>(type));
    scores.push_back(score);
    return static_cast<int32_t>(tokens.size() - 1);
  }
};

std::unique_ptr<Tokenizer> Load(const Vocab& v, const std::string& model, const std::string& pre,
                                const std::vector<std::string>& merges = {}) {
  std::vector<GgufValue> tokens, types, scores, merge_values;
  for (const auto& t : v.tokens) tokens.push_back(Str(t));
  for (int32_t t : v.types) types.push_back(I32(t));
  for (float s : v.scores) scores.push_back(testing::F32(s));
  for (const auto& m : merges) merge_values.push_back(Str(m));
  GgufTestWriter w;
  w.Add("tokenizer.ggml.model", Str(model))
      .Add("tokenizer.ggml.tokens", Array(GgufValueType::kString, tokens))
      .Add("tokenizer.ggml.token_type", Array(GgufValueType::kInt32, types))
      .Add("tokenizer.ggml.scores", Array(GgufValueType::kFloat32, scores))
      .Add("tokenizer.ggml.bos_token_id", U32(1))
      .Add("tokenizer.ggml.eos_token_id", U32(2));
  if (!pre.empty()) w.Add("tokenizer.ggml.pre", Str(pre));
  if (!merges.empty()) w.Add("tokenizer.ggml.merges", Array(GgufValueType::kString, merge_values));
  const std::string path = ::testing::TempDir() + "/tok_" + model + ".gguf";
  std::ofstream(path, std::ios::binary) << w.Build().bytes;
  auto file = GgufFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status().message();
  auto tok = LoadTokenizerFromGguf(**file);
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  std::remove(path.c_str());
  return std::move(*tok);
}

// <unk>, <s>, </s>, the 256 byte tokens, then the given pieces.
class SpmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v_.Add("<unk>", TokenType::kUnknown);
    v_.Add("<s>", TokenType::kControl);
    v_.Add("</s>", TokenType::kControl);
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
      v_.Add(hex, TokenType::kByte);
    }
    space_ = v_.Add("\xE2\x96\x81", TokenType::kNormal, -1);
    a_ = v_.Add("a", TokenType::kNormal, -2);
    b_ = v_.Add("b", TokenType::kNormal, -3);
    ab_ = v_.Add("ab", TokenType::kNormal, -0.5f);
    space_ab_ = v_.Add(
        "\xE2\x96\x81"
        "ab",
        TokenType::kNormal, -0.1f);
    v_.Add(
        "\xE2\x96\x81"
        "a",
        TokenType::kNormal, -5);
    tok_ = Load(v_, "llama", "");
  }
  static int32_t Byte(uint8_t b) { return 3 + b; }
  Vocab v_;
  int32_t space_, a_, b_, ab_, space_ab_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(SpmTest, MergesByScoreWithSpacePrefixAndByteFallback) {
  // "▁ab▁ab": "ab" (-0.5) merges first at both places, then "▁ab" (-0.1) twice; "▁a" (-5)
  // never wins.
  EXPECT_EQ(tok_->Encode("ab ab", false), (std::vector<int32_t>{space_ab_, space_ab_}));
  // "c" has no piece: its byte token.
  EXPECT_EQ(tok_->Encode("ab c", false), (std::vector<int32_t>{space_ab_, space_, Byte('c')}));
  EXPECT_EQ(tok_->Encode("ab", true), (std::vector<int32_t>{1, space_ab_}));
  EXPECT_TRUE(tok_->Encode("", false).empty());
  // Special text is matched; the text after it gets a space prefix again.
  EXPECT_EQ(tok_->Encode("<s>ab</s>", false), (std::vector<int32_t>{1, space_ab_, 2}));
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_TRUE(tok_->add_bos());
  EXPECT_TRUE(tok_->IsEos(2));
}

TEST_F(SpmTest, DecodeAndStreamDropLeadingSpaceOnce) {
  const std::vector<int32_t> ids = {1, space_ab_, space_ab_, Byte(0xC3), Byte(0xA9)};
  EXPECT_EQ(tok_->Decode(ids), "ab ab\xC3\xA9");
  Detokenizer d(*tok_);
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(d.Add(id));
  EXPECT_EQ(deltas, (std::vector<std::string>{"", "ab", " ab", "", "\xC3\xA9"}));
  EXPECT_EQ(d.Finish(), "");
  Detokenizer cont(*tok_, /*continuation=*/true);
  EXPECT_EQ(cont.Add(space_ab_), " ab");
  Detokenizer cut(*tok_);
  EXPECT_EQ(cut.Add(Byte(0xE4)), "");
  EXPECT_EQ(cut.Finish(), "\xEF\xBF\xBD");  // an unfinished character ends as U+FFFD (base/utf8.h)
}

TEST(BpeTest, MergesByRank) {
  Vocab v;
  v.Add("!", TokenType::kNormal);
  const int32_t bos = v.Add("<|bos|>", TokenType::kControl);
  const int32_t eos = v.Add("<|eos|>", TokenType::kControl);
  ASSERT_EQ(bos, 1);
  ASSERT_EQ(eos, 2);
  v.Add("a", TokenType::kNormal);
  v.Add("b", TokenType::kNormal);
  v.Add("c", TokenType::kNormal);
  const int32_t g = v.Add("\xC4\xA0", TokenType::kNormal);  // "Ġ", the space byte
  const int32_t ab = v.Add("ab", TokenType::kNormal);
  const int32_t abc = v.Add("abc", TokenType::kNormal);
  const int32_t gab = v.Add(
      "\xC4\xA0"
      "ab",
      TokenType::kNormal);
  const int32_t user = v.Add("<tool>", TokenType::kUserDefined);
  auto tok = Load(v, "gpt2", "gpt2", {"a b", "ab c", "\xC4\xA0 ab"});
  // gpt2 words: "abc", " ab", " "; "abc": a b -> ab, ab c -> abc. " ab": a b, then Ġ ab.
  EXPECT_EQ(tok->Encode("abc ab ", false), (std::vector<int32_t>{abc, gab, g}));
  EXPECT_EQ(tok->Encode("ab<tool><|eos|>", true), (std::vector<int32_t>{ab, user, eos}));
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{abc, gab, user, eos, g}), "abc ab<tool> ");
}

}  // namespace
}  // namespace kvserve::engine
