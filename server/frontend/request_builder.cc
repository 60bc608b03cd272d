#include "server/frontend/request_builder.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/utf8.h"

namespace kvserve::server {
namespace {

// Where an InvalidParam error keeps the field name.
constexpr absl::string_view kParamPayload = "type.kvserve.dev/param";

absl::Status OutOfRangeField(absl::string_view field, double value, absl::string_view range) {
  return InvalidParam(field,
                      absl::StrCat(field, " = ", value, " is out of range: must be ", range));
}

// "in [lo, hi]" / "in (lo, hi]".
std::string Interval(double lo, double hi, bool lo_open = false) {
  return absl::StrCat("in ", lo_open ? "(" : "[", lo, ", ", hi, "]");
}

// Comparisons are written so that NaN fails them.
absl::Status CheckSamplingRanges(const GenerationParams& p, const WireRules& wire) {
  const auto name = [&](absl::string_view field) {
    return absl::StrCat(wire.sampling_prefix, field);
  };
  if (p.temperature.has_value()) {
    const double t = *p.temperature;
    const bool bounded = std::isfinite(wire.max_temperature);
    if (!(std::isfinite(t) && t >= 0 && t <= wire.max_temperature)) {
      return OutOfRangeField(name("temperature"), t,
                             bounded ? Interval(0, wire.max_temperature) : "finite and >= 0");
    }
  }
  if (p.top_k.has_value() && *p.top_k < 0) {
    return OutOfRangeField(name("top_k"), static_cast<double>(*p.top_k), ">= 0 (0 = off)");
  }
  if (p.top_p.has_value() && !(*p.top_p > 0 && *p.top_p <= 1)) {
    return OutOfRangeField(name("top_p"), *p.top_p, Interval(0, 1, /*lo_open=*/true));
  }
  if (p.min_p.has_value() && !(*p.min_p >= 0 && *p.min_p <= 1)) {
    return OutOfRangeField(name("min_p"), *p.min_p, Interval(0, 1));
  }
  if (p.repetition_penalty.has_value() &&
      !(std::isfinite(*p.repetition_penalty) && *p.repetition_penalty > 0)) {
    return OutOfRangeField(name("repetition_penalty"), *p.repetition_penalty,
                           "finite and > 0 (1 = off)");
  }
  for (const auto& [field, value] : {std::pair{"presence_penalty", p.presence_penalty},
                                     std::pair{"frequency_penalty", p.frequency_penalty}}) {
    if (value.has_value() && !(*value >= -2 && *value <= 2)) {
      return OutOfRangeField(name(field), *value, Interval(-2, 2));
    }
  }
  for (const auto& [token, bias] : p.logit_bias) {
    if (!(bias >= -engine::kMaxAbsLogitBias && bias <= engine::kMaxAbsLogitBias)) {
      return InvalidParam(name("logit_bias"),
                          absl::StrCat(name("logit_bias"), "[", token, "] = ", bias,
                                       " is out of range: must be in [-100, 100]"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStopStrings(const std::vector<std::string>& stop) {
  if (stop.size() > kMaxStopStrings) {
    return InvalidParam(
        "stop", absl::StrCat("stop has ", stop.size(), " strings; at most ", kMaxStopStrings));
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) return InvalidParam("stop", absl::StrCat("stop[", i, "] is empty"));
    if (stop[i].size() > kMaxStopStringBytes) {
      return InvalidParam(
          "stop", absl::StrCat("stop[", i, "] is longer than ", kMaxStopStringBytes, " bytes"));
    }
    // The output text is valid UTF-8, and the stop matcher holds back text only from a character
    // boundary because stop strings are (gRPC's string fields are checked on the wire; JSON
    // bodies are not).
    if (base::FindInvalidUtf8(stop[i]) != std::string::npos) {
      return InvalidParam("stop", absl::StrCat("stop[", i, "] is not valid UTF-8"));
    }
  }
  return absl::OkStatus();
}

// A request that does not fit what one sequence may hold, about request field `field`.
absl::Status ContextLengthError(absl::string_view field, std::string message) {
  absl::Status status = absl::OutOfRangeError(message);
  status.SetPayload(kParamPayload, absl::Cord(field));
  return status;
}

// Token `id` at `field` (e.g. "prompt_token_ids[3]") must be in the vocabulary.
absl::Status CheckTokenId(absl::string_view param, absl::string_view field, int32_t id,
                          int32_t vocab) {
  if (id >= 0 && id < vocab) return absl::OkStatus();
  return InvalidParam(
      param, absl::StrFormat("%s = %d is outside the vocabulary [0, %d)", field, id, vocab));
}

// The tokens one sequence may hold: min(context, KV cache).
int64_t SequenceRoom(const RequestLimits& limits) {
  return std::min<int64_t>(limits.context_length, limits.kv_capacity_tokens);
}

absl::StatusOr<std::vector<int32_t>> BuildPrompt(const GenerationParams& p, const TextCodec& codec,
                                                 const RequestLimits& limits,
                                                 const WireRules& wire) {
  if (p.prompt.has_value()) {
    if (p.prompt->empty()) return InvalidParam(wire.prompt, absl::StrCat(wire.prompt, " is empty"));
    // Tokenizing costs time in the prompt's length: refuse what cannot fit before that.
    const int64_t most_bytes = SequenceRoom(limits) * codec.max_prompt_bytes_per_token();
    if (static_cast<int64_t>(p.prompt->size()) > most_bytes) {
      return ContextLengthError(
          wire.prompt,
          absl::StrFormat("%s (%d bytes) cannot fit the %d tokens a sequence may hold (a token "
                          "stands for at most %d bytes)",
                          wire.prompt, p.prompt->size(), SequenceRoom(limits),
                          codec.max_prompt_bytes_per_token()));
    }
    absl::StatusOr<std::vector<int32_t>> ids = codec.Encode(*p.prompt, p.add_special_tokens);
    if (!ids.ok()) {
      return absl::Status(ids.status().code(),
                          absl::StrCat(wire.prompt, ": ", ids.status().message()));
    }
    if (ids->empty()) return InvalidParam(wire.prompt, "prompt encodes to no tokens");
    return ids;
  }
  if (!p.prompt_token_ids.has_value()) {
    return InvalidParam(wire.prompt, absl::StrCat("input is missing: set ", wire.prompt, " or ",
                                                  wire.prompt_token_ids));
  }
  const std::vector<int32_t>& ids = *p.prompt_token_ids;
  if (ids.empty()) {
    return InvalidParam(wire.prompt_token_ids, absl::StrCat(wire.prompt_token_ids, " is empty"));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    absl::Status s =
        CheckTokenId(wire.prompt_token_ids, absl::StrCat(wire.prompt_token_ids, "[", i, "]"),
                     ids[i], codec.vocab_size());
    if (!s.ok()) return s;
  }
  return ids;
}

absl::StatusOr<engine::SamplingParams> BuildSampling(const GenerationParams& p, int32_t vocab,
                                                     const WireRules& wire) {
  engine::SamplingParams s;
  if (p.temperature.has_value()) s.temperature = static_cast<float>(*p.temperature);
  // A top_k of the vocabulary's size or more keeps every token: it is 0 (off), so that a wire
  // with 64-bit integers (HTTP) cannot wrap it into a small one.
  if (p.top_k.has_value()) s.top_k = *p.top_k >= vocab ? 0 : static_cast<int32_t>(*p.top_k);
  if (p.top_p.has_value()) s.top_p = static_cast<float>(*p.top_p);
  if (p.min_p.has_value()) s.min_p = static_cast<float>(*p.min_p);
  if (p.repetition_penalty.has_value()) {
    s.repetition_penalty = static_cast<float>(*p.repetition_penalty);
  }
  if (p.presence_penalty.has_value()) s.presence_penalty = static_cast<float>(*p.presence_penalty);
  if (p.frequency_penalty.has_value()) {
    s.frequency_penalty = static_cast<float>(*p.frequency_penalty);
  }
  if (p.seed.has_value()) s.seed = *p.seed;
  const std::string bias_field = absl::StrCat(wire.sampling_prefix, "logit_bias");
  for (const auto& [token, bias] : p.logit_bias) {
    if (token < 0 || token >= vocab) {
      return InvalidParam(bias_field,
                          absl::StrFormat("%s: token id %d is outside the vocabulary [0, %d)",
                                          bias_field, token, vocab));
    }
    s.logit_bias.emplace_back(token, static_cast<float>(bias));
  }
  // Sorted so that the engine sees the same order whatever the wire's map order was.
  std::sort(s.logit_bias.begin(), s.logit_bias.end());
  if (p.logprobs.has_value()) s.num_logprobs = static_cast<int32_t>(*p.logprobs);
  return s;
}

// max_tokens against what one sequence may hold: min(context, KV cache). An explicit value is
// reported as the client sent it (64-bit over HTTP), never narrowed first.
absl::StatusOr<int32_t> BuildMaxTokens(const GenerationParams& p, int64_t num_prompt_tokens,
                                       const RequestLimits& limits, const WireRules& wire) {
  const int64_t n = num_prompt_tokens;
  const int64_t room = SequenceRoom(limits);
  if (!p.max_tokens.has_value()) {
    if (n >= room) {
      return ContextLengthError(
          wire.prompt,
          absl::StrFormat(
              "%s (%d tokens) leaves no room to generate: a sequence may hold %d tokens",
              wire.prompt, n, room));
    }
    return static_cast<int32_t>(room - n);
  }
  // Written as a difference: n + max_tokens could overflow int64.
  if (*p.max_tokens > room - n) {
    return ContextLengthError(
        wire.max_tokens,
        absl::StrFormat("%s (%d tokens) + %s (%d) exceeds the %d tokens a sequence may hold "
                        "(context %d, KV cache %d)",
                        wire.prompt, n, wire.max_tokens, *p.max_tokens, room, limits.context_length,
                        limits.kv_capacity_tokens));
  }
  return static_cast<int32_t>(*p.max_tokens);
}

}  // namespace

absl::Status InvalidParam(absl::string_view field, absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kParamPayload, absl::Cord(field));
  return status;
}

std::optional<std::string> ErrorParam(const absl::Status& status) {
  absl::optional<absl::Cord> param = status.GetPayload(kParamPayload);
  if (!param.has_value()) return std::nullopt;
  return std::string(*param);
}

absl::Status CheckGenerationParams(const GenerationParams& p, const WireRules& wire) {
  if (p.request_id.size() > kMaxRequestIdBytes) {
    return InvalidParam("request_id",
                        absl::StrCat("request_id is longer than ", kMaxRequestIdBytes, " bytes"));
  }
  if (absl::Status s = CheckSamplingRanges(p, wire); !s.ok()) return s;
  if (p.logprobs.has_value() && (*p.logprobs < 0 || *p.logprobs > engine::kMaxLogprobs)) {
    return OutOfRangeField(wire.logprobs, static_cast<double>(*p.logprobs),
                           Interval(0, engine::kMaxLogprobs));
  }
  if (p.max_tokens.has_value() && *p.max_tokens < 1) {
    return InvalidParam(wire.max_tokens,
                        absl::StrCat(wire.max_tokens, " = ", *p.max_tokens, " must be at least 1"));
  }
  // As on gRPC, where string fields are checked on the wire: a JSON body's string may hold any
  // bytes, and a tokenizer given broken UTF-8 would guess at what was meant.
  if (p.prompt.has_value()) {
    if (const size_t at = base::FindInvalidUtf8(*p.prompt); at != std::string::npos) {
      return InvalidParam(wire.prompt,
                          absl::StrCat(wire.prompt, " is not valid UTF-8 (at byte ", at, ")"));
    }
  }
  return CheckStopStrings(p.stop);
}

namespace {

// Structured output: the compiled constraint (cached by the compiler), ended by the request's
// stop tokens. Errors name the transport's field.
absl::StatusOr<std::shared_ptr<const engine::TokenConstraint>> BuildConstraint(
    const GenerationParams& p, const absl::flat_hash_set<int32_t>& end_tokens,
    constrain::ConstraintCompiler* constraints) {
  const std::string& field = p.constraint_field;
  if (constraints == nullptr) {
    return InvalidParam(field, absl::StrCat(field, ": structured output is not available here"));
  }
  if (end_tokens.empty()) {
    return InvalidParam(field, absl::StrCat(field,
                                            " needs an end-of-sequence token to end the "
                                            "output: not with ignore_eos and no "
                                            "stop_token_ids"));
  }
  absl::StatusOr<std::shared_ptr<const constrain::GrammarConstraint>> compiled =
      constraints->Compile(p.constraint);
  if (!compiled.ok()) {
    return InvalidParam(field, absl::StrCat(field, ": ", compiled.status().message()));
  }
  return std::make_shared<const constrain::RequestConstraint>(*std::move(compiled), end_tokens);
}

}  // namespace

absl::StatusOr<BuiltRequest> BuildGenerationRequest(const GenerationParams& p,
                                                    const TextCodec& codec,
                                                    const RequestLimits& limits,
                                                    const WireRules& wire,
                                                    constrain::ConstraintCompiler* constraints) {
  if (absl::Status s = CheckGenerationParams(p, wire); !s.ok()) return s;
  const int32_t vocab = codec.vocab_size();
  BuiltRequest out;
  out.engine.request_id = p.request_id;
  absl::StatusOr<std::vector<int32_t>> prompt = BuildPrompt(p, codec, limits, wire);
  if (!prompt.ok()) return prompt.status();
  out.engine.prompt = *std::move(prompt);
  absl::StatusOr<engine::SamplingParams> sampling = BuildSampling(p, vocab, wire);
  if (!sampling.ok()) return sampling.status();
  out.engine.sampling = *std::move(sampling);
  out.stream.num_logprobs = out.engine.sampling.num_logprobs;
  out.stream.stop_strings = p.stop;
  out.stream.include_stop_str_in_output = p.include_stop_str_in_output;

  scheduler::StopConditions& stop = out.engine.stop;
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i) {
    const int32_t id = p.stop_token_ids[i];
    absl::Status s =
        CheckTokenId("stop_token_ids", absl::StrCat("stop_token_ids[", i, "]"), id, vocab);
    if (!s.ok()) return s;
    stop.stop_token_ids.push_back(id);
    out.stream.stop_token_ids.insert(id);
  }
  stop.ignore_eos = p.ignore_eos;
  for (int32_t id : codec.eos_ids()) {
    stop.eos_token_ids.insert(id);
    if (!stop.ignore_eos) out.stream.stop_token_ids.insert(id);
  }
  absl::StatusOr<int32_t> max_tokens =
      BuildMaxTokens(p, static_cast<int64_t>(out.engine.prompt.size()), limits, wire);
  if (!max_tokens.ok()) return max_tokens.status();
  stop.max_tokens = *max_tokens;
  if (!p.constraint.empty()) {
    absl::StatusOr<std::shared_ptr<const engine::TokenConstraint>> constraint =
        BuildConstraint(p, out.stream.stop_token_ids, constraints);
    if (!constraint.ok()) return constraint.status();
    out.engine.sampling.constraint = *std::move(constraint);
  }
  return out;
}

}  // namespace kvserve::server
