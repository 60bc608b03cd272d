#include "server/grpc/proto_request.h"

namespace kvserve::server {

namespace {

void SetConstraint(const kvserve::v1::GenerateRequest& r, GenerationParams* p) {
  using Kind = constrain::ConstraintSpec::Kind;
  const kvserve::v1::Constraint& c = r.constraint();
  constrain::ConstraintSpec& spec = p->constraint;
  switch (c.kind_case()) {
    case kvserve::v1::Constraint::kJsonSchema:
      spec.kind = Kind::kJsonSchema;
      spec.text = c.json_schema();
      p->constraint_field = "constraint.json_schema";
      break;
    case kvserve::v1::Constraint::kJsonObject:
      // false is "no constraint" in proto3's eyes only if unset; an explicit false is refused
      // by the check below rather than silently ignored.
      spec.kind = Kind::kJsonObject;
      p->constraint_field = "constraint.json_object";
      if (!c.json_object()) spec.text = "false";
      break;
    case kvserve::v1::Constraint::kRegex:
      spec.kind = Kind::kRegex;
      spec.text = c.regex();
      p->constraint_field = "constraint.regex";
      break;
    case kvserve::v1::Constraint::kGrammar:
      spec.kind = Kind::kGrammar;
      spec.text = c.grammar();
      p->constraint_field = "constraint.grammar";
      break;
    case kvserve::v1::Constraint::kChoice:
      spec.kind = Kind::kChoice;
      spec.choices.assign(c.choice().choices().begin(), c.choice().choices().end());
      p->constraint_field = "constraint.choice";
      break;
    default:
      break;
  }
}

}  // namespace

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
  SetConstraint(r, &p);
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
                                                    const RequestLimits& limits,
                                                    constrain::ConstraintCompiler* constraints) {
  return BuildGenerationRequest(ParamsFromProto(request), codec, limits, GrpcWireRules(),
                                constraints);
}

}  // namespace kvserve::server
