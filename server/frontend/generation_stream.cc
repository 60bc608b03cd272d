#include "server/frontend/generation_stream.h"

#include <utility>

namespace kvserve::server {
absl::StatusOr<std::unique_ptr<GenerationStream>> GenerationStream::Submit(
    serving::EngineLoop* loop, const TextCodec* codec, BuiltRequest request) {
  const int32_t num_prompt_tokens = static_cast<int32_t>(request.engine.prompt.size());
  absl::StatusOr<std::shared_ptr<serving::OutputChannel>> channel =
      loop->Submit(std::move(request.engine));
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<GenerationStream>(new GenerationStream(
      loop, codec, std::move(request.stream), num_prompt_tokens, *std::move(channel)));
}

GenerationStream::GenerationStream(serving::EngineLoop* loop, const TextCodec* codec,
                                   StreamOptions options, int32_t num_prompt_tokens,
                                   std::shared_ptr<serving::OutputChannel> channel)
    : loop_(loop),
      codec_(codec),
      options_(std::move(options)),
      num_prompt_tokens_(num_prompt_tokens),
      channel_(std::move(channel)),
      matcher_(options_.stop_strings, options_.include_stop_str_in_output) {}

void GenerationStream::AbortEngine(scheduler::FinishReason cause) {
  if (engine_finished_ || channel_->finished_pushed()) return;
  loop_->Abort(channel_->request_id(), cause);
}

absl::StatusOr<bool> GenerationStream::Drain(StreamEvent* event) {
  *event = StreamEvent();
  bool any = false;
  serving::RequestOutput out;
  while (!engine_finished_ && channel_->TryPop(&out)) {
    any = true;
    if (absl::Status error = Consume(out, event); !error.ok()) return error;
  }
  return any;
}

absl::StatusOr<bool> GenerationStream::WaitAndDrain(StreamEvent* event, absl::Time deadline) {
  *event = StreamEvent();
  if (engine_finished_) return false;
  serving::RequestOutput out;
  if (!channel_->Pop(&out, deadline)) return false;
  if (absl::Status error = Consume(out, event); !error.ok()) return error;
  // Whatever else is queued goes into the same event.
  while (!engine_finished_ && channel_->TryPop(&out)) {
    if (absl::Status error = Consume(out, event); !error.ok()) return error;
  }
  return true;
}

absl::Status GenerationStream::Consume(serving::RequestOutput& out, StreamEvent* event) {
  for (serving::GeneratedToken& token : out.tokens) {
    if (matcher_.matched()) break;  // generated before the abort took effect: dropped
    ++num_completion_tokens_;
    event->token_ids.push_back(token.token_id);
    event->logprobs.push_back(
        TokenLogprobs{token.token_id, token.logprob, std::move(token.top_logprobs)});
    // A stop token ends the text; its own text is shown only when asked for.
    std::string piece;
    if (!options_.stop_token_ids.contains(token.token_id) || options_.include_stop_str_in_output) {
      piece = codec_->TokenPiece(token.token_id);
    }
    StopStringMatcher::Result r = matcher_.Add(detokenizer_.Add(piece));
    event->text += r.text;
    if (r.matched.has_value()) {
      matched_stop_ = *r.matched;
      event->abort_engine = true;
    }
  }
  if (!out.finished) return absl::OkStatus();
  engine_finished_ = true;
  if (!out.error.ok()) return out.error;
  if (!matcher_.matched()) {
    StopStringMatcher::Result r = matcher_.Add(detokenizer_.Flush());
    event->text += r.text;
    if (r.matched.has_value()) matched_stop_ = *r.matched;
    event->text += matcher_.Flush();
  }
  event->finished = true;
  if (matcher_.matched()) {
    event->finish_reason = scheduler::FinishReason::kStopString;
    event->matched_stop = matched_stop_;
  } else {
    event->finish_reason = out.finish_reason;
  }
  event->prompt_tokens = num_prompt_tokens_;
  event->completion_tokens = num_completion_tokens_;
  event->cached_prompt_tokens = out.stats.num_cached_prompt_tokens;
  event->stats = out.stats;
  return absl::OkStatus();
}

}  // namespace kvserve::server
