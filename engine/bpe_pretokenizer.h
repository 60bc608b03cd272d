// Pre-tokenization for byte-level BPE: splits text into words before merges run, following
// the regexes named by GGUF tokenizer.ggml.pre, evaluated the way llama.cpp evaluates them
// (hand-written matchers for the Llama 3 / Qwen2 / GPT-2 patterns; a pass per pattern for the
// multi-pattern ones).
//
// Stateless; thread-safe.
#ifndef KVSERVE_ENGINE_BPE_PRETOKENIZER_H_
#define KVSERVE_ENGINE_BPE_PRETOKENIZER_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kvserve::engine {

enum class BpePreTokenizer {
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // As kLlama3 with \p{N} (one digit per word) instead of \p{N}{1,3}.
  kQwen2,
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  kGpt2,
  // \p{N} isolated, then kGpt2.
  kSmolLm,
  // llama.cpp's default: [\p{P}\$\+<=>\^~\|]+, then kGpt2, then \p{N}+, then [0-9][0-9][0-9].
  kDefault,
};

// Maps tokenizer.ggml.pre to a pre-tokenizer ("" means default). InvalidArgument for names
// kvserve does not implement.
absl::StatusOr<BpePreTokenizer> BpePreTokenizerFromName(std::string_view name);

// Lengths, in code points, of the consecutive words of `cpts` (they sum to cpts.size()).
std::vector<size_t> PreTokenize(BpePreTokenizer kind, const std::vector<uint32_t>& cpts);

}  // namespace kvserve::engine

#endif  // KVSERVE_ENGINE_BPE_PRETOKENIZER_H_
