// Fuzzes tokenization of arbitrary bytes with fixed vocabularies: a byte-level BPE built here as
// a tokenizer.json (the full byte alphabet, merges of a few words, Llama 3's split regex, a
// special and a non-special added token), and the SentencePiece vocabulary of the shared
// llama-2-tiny-random.gguf (32000 tokens, byte fallback; skipped when the shared folder is
// absent). The first input byte picks the vocabulary and the mode, the rest is the text, or, in
// ids mode, little-endian int32 token ids to decode.
//
// Checked: ids inside the vocabulary, the Detokenizer against Decode (tokenizer_checks.h), and
// Decode(Encode(text)) == text for valid UTF-8 text without special-token text or U+2581 (both
// vocabularies are lossless there).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/utf8.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/tokenizer_checks.h"

namespace kvserve::fuzz {
namespace {

// Llama 3's Split regex, JSON-escaped as tokenizer.json stores it.
constexpr char kLlama3RegexJson[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+)";

// GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the others for
// U+0100 onwards in byte order.
std::vector<std::string> ByteLevelAlphabet() {
  std::vector<std::string> chars(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    base::AppendUtf8(printable ? b : next++, &chars[b]);
  }
  return chars;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A byte-level BPE tokenizer.json: the 256 byte characters, then every prefix of a few words
// (each made by merging the previous prefix with its next character), then two added tokens.
std::string ByteLevelTokenizerJson() {
  const std::vector<std::string> alphabet = ByteLevelAlphabet();
  std::vector<std::string> vocab = alphabet;
  std::vector<std::pair<std::string, std::string>> merges;
  for (const char* word :
       {" the", " and", "Hello", " world", "ing", " \xc3\xa9t\xc3\xa9", "123", "\n\n", "    "}) {
    std::string prefix;
    for (const char c : std::string(word)) {
      const std::string next = alphabet[static_cast<unsigned char>(c)];
      if (!prefix.empty()) {
        bool known = false;
        for (const std::string& v : vocab) known = known || v == prefix + next;
        if (!known) {
          merges.emplace_back(prefix, next);
          vocab.push_back(prefix + next);
        }
      }
      prefix += next;
    }
  }
  std::string json = R"({"version": "1.0", "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": ")";
  json += kLlama3RegexJson;
  json += R"("}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
    "added_tokens": [)";
  const size_t n = vocab.size();
  json += "{\"id\": " + std::to_string(n) + ", \"content\": \"<|x|>\", \"special\": true},";
  json += "{\"id\": " + std::to_string(n + 1) + ", \"content\": \"<u>\", \"special\": false}],";
  json += R"("model": {"type": "BPE", "byte_fallback": false, "ignore_merges": false, "vocab": {)";
  for (size_t i = 0; i < n; ++i) {
    json += (i > 0 ? ", " : "") + JsonString(vocab[i]) + ": " + std::to_string(i);
  }
  json += "}, \"merges\": [";
  for (size_t i = 0; i < merges.size(); ++i) {
    json += (i > 0 ? ", " : "") + JsonString(merges[i].first + " " + merges[i].second);
  }
  return json + "]}}";
}

struct Vocabularies {
  std::unique_ptr<engine::Tokenizer> byte_level;
  std::unique_ptr<engine::Tokenizer> spm;  // null without the shared folder
};

const Vocabularies& GetVocabularies() {
  static const Vocabularies* const vocabularies = [] {
    auto* v = new Vocabularies;
    const MemoryFile json(ByteLevelTokenizerJson());
    absl::StatusOr<std::unique_ptr<engine::Tokenizer>> bpe =
        engine::LoadTokenizerFromHfJson(json.path());
    if (!bpe.ok()) {
      std::fprintf(stderr, "tokenizer_fuzzer: %s\n", std::string(bpe.status().message()).c_str());
      std::abort();
    }
    v->byte_level = *std::move(bpe);
    const char* shared = std::getenv("KVSERVE_SHARED");
    const std::string path = std::string(shared != nullptr ? shared : KVSERVE_SHARED_DIR) +
                             "/models/llama-2-tiny-random.gguf";
    absl::StatusOr<std::unique_ptr<engine::GgufFile>> gguf = engine::GgufFile::Open(path);
    if (gguf.ok()) {
      absl::StatusOr<std::unique_ptr<engine::Tokenizer>> spm =
          engine::LoadTokenizerFromGguf(**gguf);
      if (spm.ok()) v->spm = *std::move(spm);
    }
    if (v->spm == nullptr) {
      std::fprintf(stderr, "tokenizer_fuzzer: no SentencePiece vocabulary (%s), fuzzing BPE only\n",
                   path.c_str());
    }
    return v;
  }();
  return *vocabularies;
}

// Text that does not round-trip by design: special tokens' text (control tokens decode to
// nothing) and SentencePiece's U+2581, which stands for a space.
bool HasSpecialText(std::string_view text) {
  for (const std::string_view special : {"<|x|>", "<s>", "</s>", "<unk>", "\xe2\x96\x81"}) {
    if (text.find(special) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace
}  // namespace kvserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvserve;
  if (size == 0) return 0;
  const fuzz::Vocabularies& vocabularies = fuzz::GetVocabularies();
  const bool use_spm = (data[0] & 1) != 0 && vocabularies.spm != nullptr;
  const bool ids_mode = (data[0] & 2) != 0;
  const engine::Tokenizer& tokenizer = use_spm ? *vocabularies.spm : *vocabularies.byte_level;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (ids_mode) {
    std::vector<int32_t> ids(rest.size() / 4);
    if (!ids.empty()) std::memcpy(ids.data(), rest.data(), ids.size() * 4);
    fuzz::CheckDetokenizer(tokenizer, ids);
    return 0;
  }
  const std::vector<int32_t> ids = fuzz::CheckTokenizer(tokenizer, rest);
  if (base::FindInvalidUtf8(absl::string_view(rest.data(), rest.size())) ==
          absl::string_view::npos &&
      !fuzz::HasSpecialText(rest)) {
    fuzz::FuzzCheck(tokenizer.Decode(ids) == rest, "Decode(Encode(text)) differs from the text");
  }
  return 0;
}
