// Turns a wire GenerateRequest into what the engine loop and the stream need, validating every
// field first so that errors name the field as the client spelled it ("sampling.top_p",
// "prompt_token_ids[3]", "stop[1]", "logprobs"). The engine loop re-checks its own invariants.
//
// max_tokens: when unset it defaults to the rest of the context — min(context length, KV cache
// capacity) minus the prompt; an explicit value that does not fit is OUT_OF_RANGE (never
// clamped).
//
// Thread-safety: pure functions.
#ifndef KVSERVE_SERVER_FRONTEND_REQUEST_BUILDER_H_
#define KVSERVE_SERVER_FRONTEND_REQUEST_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "kvserve/v1/generation.pb.h"
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

absl::StatusOr<BuiltRequest> BuildGenerationRequest(const kvserve::v1::GenerateRequest& request,
                                                    const TextCodec& codec,
                                                    const RequestLimits& limits);

// The sampling message as engine parameters, each field checked and named "sampling.<field>".
absl::StatusOr<engine::SamplingParams> BuildSamplingParams(const kvserve::v1::SamplingParams& s,
                                                           int32_t vocab_size);

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_REQUEST_BUILDER_H_
