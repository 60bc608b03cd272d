// The one validation point for generation requests. Every transport parses its wire format
// into GenerationParams (plain values, nothing checked beyond the wire's own types), then calls
// BuildGenerationRequest, which checks every field and turns the request into what the engine
// loop and the stream need. So a rule (a range, max_tokens against the context and the KV cache)
// is written once, and both transports refuse the same requests.
//
// Errors name the field as the client spelled it: WireRules says how a transport names fields
// ("sampling.top_p" over gRPC, "top_p" over OpenAI HTTP) and carries the one limit a wire
// contract adds (OpenAI's temperature <= 2). Field errors are InvalidArgument with the field
// name as the status payload (ErrorParam reads it back: OpenAI's "param"); a request that does
// not fit the context or the KV cache is OutOfRange, with the field to shorten (the prompt, or
// max_tokens when it was set) as its payload. The engine loop re-checks its own
// invariants (EngineLoop::Submit), for callers that skip this point (benchmarks, `generate`).
//
// max_tokens: when unset it defaults to the rest of the context — min(context length, KV cache
// capacity) minus the prompt; an explicit value that does not fit is OUT_OF_RANGE (never
// clamped).
//
// Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_FRONTEND_REQUEST_BUILDER_H_
#define KVSERVE_SERVER_FRONTEND_REQUEST_BUILDER_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "constrain/constraint_compiler.h"
#include "server/models/text_codec.h"
#include "serving/engine_loop.h"

namespace kvserve::server {

inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxStopStringBytes = 256;
inline constexpr int kMaxRequestIdBytes = 256;

struct RequestLimits {
  int32_t context_length = 0;      // the scheduler's max_model_len
  int64_t kv_capacity_tokens = 0;  // pages x page size
};

// A generation request as a client asked for it, whatever the transport. Unset optionals take
// the engine's defaults.
struct GenerationParams {
  std::string request_id;  // empty: the engine loop assigns one
  // The prompt: text (tokenized by the model's codec) or token ids. Neither set: "input is
  // missing".
  std::optional<std::string> prompt;
  std::optional<std::vector<int32_t>> prompt_token_ids;
  bool add_special_tokens = true;  // text prompts: let the tokenizer add BOS
  std::optional<int64_t> max_tokens;

  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<double> presence_penalty;
  std::optional<double> frequency_penalty;
  std::optional<uint64_t> seed;
  std::vector<std::pair<int32_t, double>> logit_bias;  // token id → bias, in any order
  std::optional<int64_t> logprobs;                     // alternatives reported per token

  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;

  // Structured output: the output follows this (a JSON schema, a regex, a grammar, choices).
  // `constraint_field` is how the client named it, for errors ("response_format",
  // "guided_json", "constraint.json_schema").
  constrain::ConstraintSpec constraint;
  std::string constraint_field = "constraint";
};

// How a transport names request fields in its errors, and the limits its own wire contract
// adds to the engine's.
struct WireRules {
  std::string sampling_prefix;    // before sampling fields: "sampling." (gRPC), "" (OpenAI)
  std::string prompt = "prompt";  // the text prompt ("messages" for a rendered chat)
  std::string prompt_token_ids = "prompt_token_ids";
  std::string max_tokens = "max_tokens";
  std::string logprobs = "logprobs";
  double max_temperature = std::numeric_limits<double>::infinity();
};

// Everything a Generate stream needs besides the engine's request.
struct StreamOptions {
  std::vector<std::string> stop_strings;
  bool include_stop_str_in_output = false;
  int32_t num_logprobs = 0;
  // Ids whose generation ends the request (EOS unless ignore_eos, and stop_token_ids): their
  // text is left out unless include_stop_str_in_output.
  absl::flat_hash_set<int32_t> stop_token_ids;
};

struct BuiltRequest {
  serving::GenerationRequest engine;
  StreamOptions stream;
};

// The checks that need no model: ranges of the sampling fields, logprobs, max_tokens >= 1, stop
// strings, request_id. BuildGenerationRequest runs them first; a transport may also run them
// as soon as it has parsed a request, to refuse it before any work (a chat template render).
absl::Status CheckGenerationParams(const GenerationParams& params, const WireRules& wire);

// The one validation point: CheckGenerationParams, then the prompt (tokenized or its ids checked
// against the vocabulary), logit_bias and stop_token_ids against the vocabulary, max_tokens
// against the context and the KV cache, and a constraint compiled by `constraints` (an invalid
// or unsatisfiable one is InvalidArgument naming params.constraint_field; without a compiler,
// any constraint is refused).
absl::StatusOr<BuiltRequest> BuildGenerationRequest(
    const GenerationParams& params, const TextCodec& codec, const RequestLimits& limits,
    const WireRules& wire, constrain::ConstraintCompiler* constraints = nullptr);

// An InvalidArgument error about request field `field` (carried as the status payload).
absl::Status InvalidParam(absl::string_view field, absl::string_view message);
// The field an InvalidParam or context-length (OutOfRange) error names; nullopt for others.
std::optional<std::string> ErrorParam(const absl::Status& status);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_REQUEST_BUILDER_H_
