#include "server/frontend/request_builder.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvserve::server {
namespace {

absl::Status OutOfRangeField(absl::string_view field, double value, absl::string_view range) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " = ", value, " is out of range: must be ", range));
}

}  // namespace

absl::StatusOr<engine::SamplingParams> BuildSamplingParams(const kvserve::v1::SamplingParams& s,
                                                           int32_t vocab_size) {
  engine::SamplingParams p;
  // Comparisons are written so that NaN fails them.
  if (s.has_temperature()) {
    if (!(std::isfinite(s.temperature()) && s.temperature() >= 0)) {
      return OutOfRangeField("sampling.temperature", s.temperature(), "finite and >= 0");
    }
    p.temperature = s.temperature();
  }
  if (s.has_top_k()) {
    if (s.top_k() < 0) return OutOfRangeField("sampling.top_k", s.top_k(), ">= 0 (0 = off)");
    p.top_k = s.top_k();
  }
  if (s.has_top_p()) {
    if (!(s.top_p() > 0 && s.top_p() <= 1)) {
      return OutOfRangeField("sampling.top_p", s.top_p(), "in (0, 1]");
    }
    p.top_p = s.top_p();
  }
  if (s.has_min_p()) {
    if (!(s.min_p() >= 0 && s.min_p() <= 1)) {
      return OutOfRangeField("sampling.min_p", s.min_p(), "in [0, 1]");
    }
    p.min_p = s.min_p();
  }
  if (s.has_repetition_penalty()) {
    if (!(std::isfinite(s.repetition_penalty()) && s.repetition_penalty() > 0)) {
      return OutOfRangeField("sampling.repetition_penalty", s.repetition_penalty(),
                             "finite and > 0 (1 = off)");
    }
    p.repetition_penalty = s.repetition_penalty();
  }
  if (s.has_presence_penalty()) {
    if (!(s.presence_penalty() >= -2 && s.presence_penalty() <= 2)) {
      return OutOfRangeField("sampling.presence_penalty", s.presence_penalty(), "in [-2, 2]");
    }
    p.presence_penalty = s.presence_penalty();
  }
  if (s.has_frequency_penalty()) {
    if (!(s.frequency_penalty() >= -2 && s.frequency_penalty() <= 2)) {
      return OutOfRangeField("sampling.frequency_penalty", s.frequency_penalty(), "in [-2, 2]");
    }
    p.frequency_penalty = s.frequency_penalty();
  }
  if (s.has_seed()) p.seed = s.seed();
  // Sorted so that the engine sees the same order whatever the map's iteration order is.
  for (const auto& [token, bias] : s.logit_bias()) {
    if (token < 0 || token >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sampling.logit_bias: token id %d is outside the vocabulary [0, %d)", token, vocab_size));
    }
    if (!(bias >= -engine::kMaxAbsLogitBias && bias <= engine::kMaxAbsLogitBias)) {
      return absl::InvalidArgumentError(absl::StrCat("sampling.logit_bias[", token, "] = ", bias,
                                                     " is out of range: must be in [-100, 100]"));
    }
    p.logit_bias.emplace_back(token, bias);
  }
  std::sort(p.logit_bias.begin(), p.logit_bias.end());
  return p;
}

absl::StatusOr<BuiltRequest> BuildGenerationRequest(const kvserve::v1::GenerateRequest& r,
                                                    const TextCodec& codec,
                                                    const RequestLimits& limits) {
  BuiltRequest out;
  const int32_t vocab = codec.vocab_size();
  if (r.request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is longer than ", kMaxRequestIdBytes, " bytes"));
  }
  out.engine.request_id = r.request_id();

  switch (r.input_case()) {
    case kvserve::v1::GenerateRequest::kPrompt: {
      if (r.prompt().empty()) return absl::InvalidArgumentError("prompt is empty");
      const bool add_special = !r.has_add_special_tokens() || r.add_special_tokens();
      absl::StatusOr<std::vector<int32_t>> ids = codec.Encode(r.prompt(), add_special);
      if (!ids.ok()) {
        return absl::Status(ids.status().code(), absl::StrCat("prompt: ", ids.status().message()));
      }
      out.engine.prompt = std::move(*ids);
      break;
    }
    case kvserve::v1::GenerateRequest::kPromptTokenIds: {
      const auto& ids = r.prompt_token_ids().ids();
      if (ids.empty()) return absl::InvalidArgumentError("prompt_token_ids is empty");
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= vocab) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "prompt_token_ids[%d] = %d is outside the vocabulary [0, %d)", i, ids[i], vocab));
        }
      }
      out.engine.prompt.assign(ids.begin(), ids.end());
      break;
    }
    default:
      return absl::InvalidArgumentError("input is missing: set prompt or prompt_token_ids");
  }
  if (out.engine.prompt.empty()) return absl::InvalidArgumentError("prompt encodes to no tokens");

  absl::StatusOr<engine::SamplingParams> sampling = BuildSamplingParams(r.sampling(), vocab);
  if (!sampling.ok()) return sampling.status();
  out.engine.sampling = std::move(*sampling);
  if (r.has_logprobs()) {
    if (r.logprobs() < 0 || r.logprobs() > engine::kMaxLogprobs) {
      return OutOfRangeField("logprobs", r.logprobs(),
                             absl::StrCat("in [0, ", engine::kMaxLogprobs, "]"));
    }
    out.engine.sampling.num_logprobs = r.logprobs();
    out.stream.num_logprobs = r.logprobs();
  }

  if (r.stop_size() > kMaxStopStrings) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop has ", r.stop_size(), " strings; at most ", kMaxStopStrings));
  }
  for (int i = 0; i < r.stop_size(); ++i) {
    if (r.stop(i).empty())
      return absl::InvalidArgumentError(absl::StrCat("stop[", i, "] is empty"));
    if (r.stop(i).size() > kMaxStopStringBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "] is longer than ", kMaxStopStringBytes, " bytes"));
    }
    out.stream.stop_strings.push_back(r.stop(i));
  }
  out.stream.include_stop_str_in_output = r.include_stop_str_in_output();

  scheduler::StopConditions& stop = out.engine.stop;
  for (int i = 0; i < r.stop_token_ids_size(); ++i) {
    const int32_t id = r.stop_token_ids(i);
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "stop_token_ids[%d] = %d is outside the vocabulary [0, %d)", i, id, vocab));
    }
    stop.stop_token_ids.push_back(id);
    out.stream.stop_token_ids.insert(id);
  }
  stop.ignore_eos = r.ignore_eos();
  for (int32_t id : codec.eos_ids()) {
    stop.eos_token_ids.insert(id);
    if (!stop.ignore_eos) out.stream.stop_token_ids.insert(id);
  }

  const int64_t n = static_cast<int64_t>(out.engine.prompt.size());
  const int64_t room = std::min<int64_t>(limits.context_length, limits.kv_capacity_tokens);
  if (r.has_max_tokens()) {
    if (r.max_tokens() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_tokens = ", r.max_tokens(), " must be at least 1"));
    }
    if (n + r.max_tokens() > room) {
      return absl::OutOfRangeError(absl::StrFormat(
          "prompt (%d tokens) + max_tokens (%d) exceeds the %d tokens a sequence may hold "
          "(context %d, KV cache %d)",
          n, r.max_tokens(), room, limits.context_length, limits.kv_capacity_tokens));
    }
    stop.max_tokens = r.max_tokens();
  } else {
    if (n >= room) {
      return absl::OutOfRangeError(absl::StrFormat(
          "prompt (%d tokens) leaves no room to generate: a sequence may hold %d tokens", n, room));
    }
    stop.max_tokens = static_cast<int32_t>(room - n);
  }
  return out;
}

}  // namespace kvserve::server
