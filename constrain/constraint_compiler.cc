#include "constrain/constraint_compiler.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/utf8.h"
#include "constrain/grammar.h"
#include "constrain/json_schema.h"
#include "constrain/regex.h"

namespace kvserve::constrain {
namespace {

constexpr size_t kMaxChoices = 1024;

// A GBNF string literal for `bytes` (escaped; bytes that are not valid UTF-8 are refused).
absl::StatusOr<std::string> ChoiceLiteral(absl::string_view bytes) {
  if (base::FindInvalidUtf8(bytes) != absl::string_view::npos) {
    return absl::InvalidArgumentError("text is not valid UTF-8");
  }
  std::string out = "\"";
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      out += absl::StrFormat("\\x%02X", u);
    } else {
      out += c;  // UTF-8 passes through: the grammar text is UTF-8
    }
  }
  out += '"';
  return out;
}

}  // namespace

const char* ConstraintKindName(ConstraintSpec::Kind kind) {
  switch (kind) {
    case ConstraintSpec::Kind::kNone:
      return "none";
    case ConstraintSpec::Kind::kJsonSchema:
      return "json_schema";
    case ConstraintSpec::Kind::kJsonObject:
      return "json_object";
    case ConstraintSpec::Kind::kRegex:
      return "regex";
    case ConstraintSpec::Kind::kGrammar:
      return "grammar";
    case ConstraintSpec::Kind::kChoice:
      return "choice";
  }
  return "unknown";
}

absl::StatusOr<std::string> ConstraintToGbnf(const ConstraintSpec& spec) {
  const size_t bytes = spec.text.size();
  if (bytes > ConstraintCompiler::kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(ConstraintKindName(spec.kind), " is ", bytes, " bytes; at most ",
                     ConstraintCompiler::kMaxSpecBytes, " are accepted"));
  }
  switch (spec.kind) {
    case ConstraintSpec::Kind::kNone:
      return absl::InvalidArgumentError("no constraint");
    case ConstraintSpec::Kind::kJsonSchema:
      return JsonSchemaToGbnf(spec.text);
    case ConstraintSpec::Kind::kJsonObject:
      if (!spec.text.empty()) return absl::InvalidArgumentError("json_object must be true");
      return AnyJsonObjectGbnf();
    case ConstraintSpec::Kind::kRegex:
      return RegexToGbnf(spec.text);
    case ConstraintSpec::Kind::kGrammar:
      return spec.text;
    case ConstraintSpec::Kind::kChoice: {
      if (spec.choices.empty() || spec.choices.size() > kMaxChoices) {
        return absl::InvalidArgumentError(
            absl::StrCat("choices must hold 1 to ", kMaxChoices, " strings"));
      }
      std::string gbnf = "root ::= ";
      size_t total = 0;
      for (size_t i = 0; i < spec.choices.size(); ++i) {
        total += spec.choices[i].size();
        if (spec.choices[i].empty()) {
          return absl::InvalidArgumentError(absl::StrCat("choice ", i, " is empty"));
        }
        absl::StatusOr<std::string> literal = ChoiceLiteral(spec.choices[i]);
        if (!literal.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("choice ", i, ": ", literal.status().message()));
        }
        absl::StrAppend(&gbnf, i == 0 ? "" : " | ", *literal);
      }
      if (total > ConstraintCompiler::kMaxSpecBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the choices are ", total, " bytes; at most ", ConstraintCompiler::kMaxSpecBytes));
      }
      return gbnf;
    }
  }
  return absl::InvalidArgumentError("unknown constraint kind");
}

ConstraintCompiler::ConstraintCompiler(int32_t vocab_size,
                                       std::function<std::string(int32_t)> piece_of)
    : vocab_size_(vocab_size), piece_of_(std::move(piece_of)) {}

std::shared_ptr<const TokenVocabulary> ConstraintCompiler::Vocabulary() {
  absl::MutexLock lock(&mu_);
  if (vocabulary_ == nullptr) {
    std::vector<std::string> pieces(static_cast<size_t>(vocab_size_));
    for (int32_t id = 0; id < vocab_size_; ++id) pieces[id] = piece_of_(id);
    vocabulary_ = std::make_shared<const TokenVocabulary>(std::move(pieces));
  }
  return vocabulary_;
}

absl::StatusOr<std::shared_ptr<const GrammarConstraint>> ConstraintCompiler::Compile(
    const ConstraintSpec& spec) {
  std::string key = ConstraintKindName(spec.kind);
  key += '\0';
  key += spec.text;
  for (const std::string& choice : spec.choices) {
    key += '\0';
    key += choice;
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  absl::StatusOr<std::string> gbnf = ConstraintToGbnf(spec);
  if (!gbnf.ok()) return gbnf.status();
  absl::StatusOr<std::shared_ptr<const Grammar>> grammar = Grammar::Parse(*gbnf);
  if (!grammar.ok()) return grammar.status();
  std::shared_ptr<const TokenVocabulary> vocabulary = Vocabulary();
  if (vocabulary->num_nonempty() == 0) {
    return absl::InvalidArgumentError(
        "structured output needs the model's tokenizer, and this server has none");
  }
  absl::StatusOr<std::shared_ptr<const GrammarConstraint>> compiled =
      GrammarConstraint::Create(*std::move(grammar), std::move(vocabulary));
  if (!compiled.ok()) return compiled.status();
  absl::MutexLock lock(&mu_);
  if (!index_.contains(key)) {
    lru_.emplace_front(key, *compiled);
    index_[key] = lru_.begin();
    if (lru_.size() > kCacheEntries) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  return compiled;
}

}  // namespace kvserve::constrain
