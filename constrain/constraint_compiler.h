// What a client asks its output to follow (a JSON schema, any JSON object, a regular expression,
// a GBNF grammar, one of a list of strings), compiled for the served model's vocabulary.
//
// Every kind becomes GBNF text (json_schema.h, regex.h, or a literal alternation for choices),
// then one Grammar, then a GrammarConstraint over the vocabulary's trie. Compiled constraints
// are cached by (kind, text) in a small LRU, so the masks a popular schema's states need are
// computed once for all the requests that send it.
//
// Thread-safety: ConstraintCompiler is thread-safe; the vocabulary is built on first use.
#ifndef KVSERVE_CONSTRAIN_CONSTRAINT_COMPILER_H_
#define KVSERVE_CONSTRAIN_CONSTRAINT_COMPILER_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "constrain/token_constraint.h"
#include "constrain/token_vocabulary.h"

namespace kvserve::constrain {

struct ConstraintSpec {
  enum class Kind { kNone, kJsonSchema, kJsonObject, kRegex, kGrammar, kChoice };
  Kind kind = Kind::kNone;
  std::string text;                  // kJsonSchema: the schema (JSON); kRegex; kGrammar (GBNF)
  std::vector<std::string> choices;  // kChoice: the output is exactly one of these

  bool empty() const { return kind == Kind::kNone; }
};

// "json_schema", "regex", ... (for errors and logs).
const char* ConstraintKindName(ConstraintSpec::Kind kind);

// The GBNF text of `spec`. InvalidArgument naming what is wrong (the schema keyword and its
// JSON pointer, the regex's byte offset); kChoice needs 1 to 1024 non-empty choices.
absl::StatusOr<std::string> ConstraintToGbnf(const ConstraintSpec& spec);

class ConstraintCompiler {
 public:
  // `piece_of(id)`: the bytes of token id (TextCodec::TokenPiece), for id in [0, vocab_size).
  // It is called vocab_size times on the first Compile, never after.
  ConstraintCompiler(int32_t vocab_size, std::function<std::string(int32_t)> piece_of);

  // The compiled constraint of `spec` (not kNone): from the cache, or compiled and cached.
  // Errors: ConstraintToGbnf's and Grammar::Parse's (InvalidArgument), and InvalidArgument when
  // no token of the vocabulary can begin a sentence (the constraint could never be met), or when
  // the vocabulary has no token bytes at all (a server without a tokenizer).
  absl::StatusOr<std::shared_ptr<const GrammarConstraint>> Compile(const ConstraintSpec& spec)
      ABSL_LOCKS_EXCLUDED(mu_);

  static constexpr size_t kCacheEntries = 32;
  // Longest accepted spec text (schema, regex, grammar), and total bytes of choices.
  static constexpr size_t kMaxSpecBytes = 256 * 1024;

 private:
  std::shared_ptr<const TokenVocabulary> Vocabulary() ABSL_LOCKS_EXCLUDED(mu_);

  const int32_t vocab_size_;
  std::function<std::string(int32_t)> piece_of_;
  absl::Mutex mu_;
  std::shared_ptr<const TokenVocabulary> vocabulary_ ABSL_GUARDED_BY(mu_);
  // LRU: most recent first; the map points into the list.
  using Entry = std::pair<std::string, std::shared_ptr<const GrammarConstraint>>;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvserve::constrain

#endif  // KVSERVE_CONSTRAIN_CONSTRAINT_COMPILER_H_
