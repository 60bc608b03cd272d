// FinishReason: why a request ended — the one enum every layer uses. The scheduler decides the
// first three from the request's own stop conditions; the others are aborts, told apart by who
// aborted (the engine loop is told when a request is aborted). One mapping each turns it into
// the wire's words: the proto's FinishReason (server/grpc/generation_service.cc) and OpenAI's
// "stop" / "length" (server/http/openai_api.cc); FinishReasonName gives the metrics label.
//
// Thread-safety: a value; pure functions.
#ifndef KVSERVE_SCHEDULER_FINISH_REASON_H_
#define KVSERVE_SCHEDULER_FINISH_REASON_H_

#include "absl/strings/string_view.h"

namespace kvserve::scheduler {

enum class FinishReason {
  kStop,           // an EOS token (unless ignore_eos) or a stop token was generated
  kLength,         // max_tokens output tokens were generated
  kContextLength,  // the sequence filled the model's context
  kStopString,     // the server matched a stop string and aborted the request
  kCancelled,      // aborted by the client: cancelled, went away, or its deadline passed
  kError,          // the engine or the server failed the request (including shutdown)
};
inline constexpr int kNumFinishReasons = 6;

// kStopString, kCancelled, kError: the request was aborted rather than finished by itself.
inline bool IsAbort(FinishReason reason) {
  return reason == FinishReason::kStopString || reason == FinishReason::kCancelled ||
         reason == FinishReason::kError;
}

// "stop", "length", "context_length", "stop_string", "cancelled", "error".
inline absl::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kContextLength:
      return "context_length";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

}  // namespace kvserve::scheduler

#endif  // KVSERVE_SCHEDULER_FINISH_REASON_H_
