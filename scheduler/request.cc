#include "scheduler/request.h"

#include <algorithm>
#include <utility>

namespace kvserve::scheduler {

bool IsFinished(RequestState state) { return FinishReasonOf(state).has_value(); }

std::optional<FinishReason> FinishReasonOf(RequestState state) {
  switch (state) {
    case RequestState::kFinishedStop:
      return FinishReason::kStop;
    case RequestState::kFinishedLength:
      return FinishReason::kLength;
    case RequestState::kFinishedContextLength:
      return FinishReason::kContextLength;
    case RequestState::kFinishedAborted:
      return FinishReason::kCancelled;
    case RequestState::kWaiting:
    case RequestState::kRunning:
    case RequestState::kPreempted:
      break;
  }
  return std::nullopt;
}

RequestState FinishedStateFor(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return RequestState::kFinishedStop;
    case FinishReason::kLength:
      return RequestState::kFinishedLength;
    case FinishReason::kContextLength:
      return RequestState::kFinishedContextLength;
    case FinishReason::kStopString:
    case FinishReason::kCancelled:
    case FinishReason::kError:
      break;
  }
  return RequestState::kFinishedAborted;
}

Request::Request(std::string id, std::vector<int32_t> prompt_token_ids, StopConditions stop)
    : id_(std::move(id)),
      all_token_ids_(std::move(prompt_token_ids)),
      num_prompt_tokens_(static_cast<int32_t>(all_token_ids_.size())),
      stop_(std::move(stop)) {}

int32_t Request::ContextLength(int32_t max_model_len) const {
  if (stop_.max_context_length <= 0) return max_model_len;
  return std::min(stop_.max_context_length, max_model_len);
}

void Request::AppendOutputToken(int32_t token) { all_token_ids_.push_back(token); }

std::optional<FinishReason> Request::CheckStop(int32_t max_model_len) const {
  if (num_output_tokens() == 0) return std::nullopt;
  const int32_t last = all_token_ids_.back();
  if (!stop_.ignore_eos && stop_.eos_token_ids.contains(last)) return FinishReason::kStop;
  if (std::find(stop_.stop_token_ids.begin(), stop_.stop_token_ids.end(), last) !=
      stop_.stop_token_ids.end()) {
    return FinishReason::kStop;
  }
  if (num_output_tokens() >= stop_.max_tokens) return FinishReason::kLength;
  if (num_tokens() >= ContextLength(max_model_len)) return FinishReason::kContextLength;
  return std::nullopt;
}

}  // namespace kvserve::scheduler
