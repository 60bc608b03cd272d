// GenerationStream: one generation request as any transport serves it — submitted to the
// EngineLoop, then its OutputChannel outputs turned into text deltas (UTF-8-safe, stop strings
// held back and cut), token ids, per-token logprobs and, at the end, the finish reason and usage.
// The gRPC Generate reactor and the OpenAI HTTP handlers both consume requests through it, so
// validation aside, both transports stream the same text and finish the same way.
//
// A consumer either blocks in WaitAndDrain() (an HTTP handler thread) or registers a notifier on
// channel() and calls Drain() when woken (the asynchronous gRPC reactor).
//
// When a stop string matches, the engine must stop generating: the event says so
// (`abort_engine`) and the consumer calls AbortEngine() — outside its own locks, since the
// engine thread may hold the loop's lock while it runs the channel notifier.
//
// Ownership: holds non-owning pointers to the loop and the codec, which must outlive it (the
// serving backend owns both). Thread-safety: Drain/WaitAndDrain must be serialized by the
// caller; AbortEngine, request_id and channel may be called from any thread.
#ifndef KVSERVE_SERVER_FRONTEND_GENERATION_STREAM_H_
#define KVSERVE_SERVER_FRONTEND_GENERATION_STREAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/utf8.h"
#include "scheduler/finish_reason.h"
#include "server/frontend/request_builder.h"
#include "server/frontend/stop_matcher.h"
#include "server/models/text_codec.h"
#include "serving/engine_loop.h"
#include "serving/output_channel.h"

namespace kvserve::server {

struct TokenLogprobs {
  int32_t token_id = 0;
  float logprob = 0;                           // always filled by the engine
  std::vector<std::pair<int32_t, float>> top;  // the request's num_logprobs alternatives
};

// What one Drain produced. Tokens and text may be empty (e.g. a stop token's text is left out).
struct StreamEvent {
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprobs> logprobs;  // one per entry of token_ids
  bool abort_engine = false;            // a stop string matched: call AbortEngine(kStopString)

  bool finished = false;  // the last event of the request; the fields below are set
  scheduler::FinishReason finish_reason = scheduler::FinishReason::kStop;
  std::string matched_stop;  // with kStopString
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;
  serving::RequestStats stats;
};

class GenerationStream {
 public:
  // Submits the request. Errors: those of EngineLoop::Submit (ResourceExhausted when the queue
  // is full, Unavailable while draining, InvalidArgument/OutOfRange from its own checks).
  static absl::StatusOr<std::unique_ptr<GenerationStream>> Submit(serving::EngineLoop* loop,
                                                                  const TextCodec* codec,
                                                                  BuiltRequest request);

  // Moves every queued output into `*event` (cleared first). Returns whether any output was
  // queued; an error when the engine failed the request (the stream is then finished).
  absl::StatusOr<bool> Drain(StreamEvent* event);
  // Waits until an output is queued or `deadline` passes, then drains as Drain does.
  absl::StatusOr<bool> WaitAndDrain(StreamEvent* event, absl::Time deadline);

  // True once the finishing output was drained.
  bool finished() const { return engine_finished_; }
  // Aborts the engine request unless the engine already finished it. `cause` tells the engine
  // (and its metrics) why: kStopString after `abort_engine`, kCancelled when the client left.
  void AbortEngine(scheduler::FinishReason cause = scheduler::FinishReason::kCancelled);

  const std::string& request_id() const { return channel_->request_id(); }
  serving::OutputChannel& channel() { return *channel_; }
  const StreamOptions& options() const { return options_; }

 private:
  GenerationStream(serving::EngineLoop* loop, const TextCodec* codec, StreamOptions options,
                   int32_t num_prompt_tokens, std::shared_ptr<serving::OutputChannel> channel);
  // Adds one output to `event`; returns the engine's error, if any.
  absl::Status Consume(serving::RequestOutput& out, StreamEvent* event);

  serving::EngineLoop* const loop_;
  const TextCodec* const codec_;
  const StreamOptions options_;
  const int32_t num_prompt_tokens_;
  const std::shared_ptr<serving::OutputChannel> channel_;

  StopStringMatcher matcher_;
  base::Utf8Stream detokenizer_;
  std::string matched_stop_;
  int32_t num_completion_tokens_ = 0;
  std::atomic<bool> engine_finished_{false};
};

}  // namespace kvserve::server

#endif  // KVSERVE_SERVER_FRONTEND_GENERATION_STREAM_H_
