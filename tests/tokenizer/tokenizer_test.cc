// Unit tests for the tokenizers on tiny hand-made vocabularies whose expected ids are derived
// by hand from the algorithms' definitions (the corpus-wide comparison against llama.cpp is
// tokenizer_oracle_test.py).
#include <string>
#include <vector>

#include "engine/bpe_pretokenizer.h"
#include "engine/detokenizer.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"
#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

TEST(UnicodeTest, ByteToUnicodeIsGpt2Mapping) {
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");  // U+0120 "Ġ"
  EXPECT_EQ(ByteToUnicode('\n'), "\xC4\x8A");  // U+010A "Ċ"
  EXPECT_EQ(ByteToUnicode('A'), "A");
  for (int b = 0; b < 256; ++b) {
    const std::vector<uint32_t> cps = DecodeUtf8(ByteToUnicode(static_cast<uint8_t>(b)));
    ASSERT_EQ(cps.size(), 1u);
    EXPECT_EQ(UnicodeToByte(cps[0]), b);
  }
}

TEST(UnicodeTest, IncompleteSuffix) {
  EXPECT_EQ(IncompleteUtf8Suffix("ab"), 0);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xE4"), 1);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xE4\xB8"), 2);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xE4\xB8\xAD"), 0);
  EXPECT_EQ(IncompleteUtf8Suffix("\xF0\x9F\x98"), 3);
  EXPECT_EQ(IncompleteUtf8Suffix("\x80"), 0);  // stray continuation: nothing to wait for
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

}  // namespace
}  // namespace kvserve::engine
