#include "server/grpc/proto_request.h"

namespace kvserve::server {

GenerationParams ParamsFromProto(const kvserve::v1::GenerateRequest& r) {
  GenerationParams p;
  p.request_id = r.request_id();
  switch (r.input_case()) {
    case kvserve::v1::GenerateRequest::kPrompt:
      p.prompt = r.prompt();
      break;
    case kvserve::v1::GenerateRequest::kPromptTokenIds:
      p.prompt_token_ids.emplace(r.prompt_token_ids().ids().begin(),
                                 r.prompt_token_ids().ids().end());
      break;
    default:
      break;
  }
  p.add_special_tokens = !r.has_add_special_tokens() || r.add_special_tokens();
  if (r.has_max_tokens()) p.max_tokens = r.max_tokens();

  const kvserve::v1::SamplingParams& s = r.sampling();
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_min_p()) p.min_p = s.min_p();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  if (s.has_presence_penalty()) p.presence_penalty = s.presence_penalty();
  if (s.has_frequency_penalty()) p.frequency_penalty = s.frequency_penalty();
  if (s.has_seed()) p.seed = s.seed();
  for (const auto& [token, bias] : s.logit_bias()) p.logit_bias.emplace_back(token, bias);
  if (r.has_logprobs()) p.logprobs = r.logprobs();

  p.stop.assign(r.stop().begin(), r.stop().end());
  p.include_stop_str_in_output = r.include_stop_str_in_output();
  p.stop_token_ids.assign(r.stop_token_ids().begin(), r.stop_token_ids().end());
  p.ignore_eos = r.ignore_eos();
  return p;
}

const WireRules& GrpcWireRules() {
  static const WireRules* rules = [] {
    auto* w = new WireRules;
    w->sampling_prefix = "sampling.";
    return w;
  }();
  return *rules;
}

absl::StatusOr<BuiltRequest> BuildGenerationRequest(const kvserve::v1::GenerateRequest& request,
                                                    const TextCodec& codec,
                                                    const RequestLimits& limits) {
  return BuildGenerationRequest(ParamsFromProto(request), codec, limits, GrpcWireRules());
}

}  // namespace kvserve::server
