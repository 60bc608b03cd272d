// GenerationStream over a real EngineLoop (a scripted fake executor, the byte-level codec): the
// two ways a transport consumes a stream — a handler thread blocked in WaitAndDrain (HTTP) and a
// notifier on the engine thread waking a consumer that calls Drain (the gRPC reactor) — with
// several consumers at once, a stop string that makes the consumer abort the engine, and an
// abort from a third thread. Threaded on purpose: scripts/tsan.sh runs it under ThreadSanitizer.
#include "server/frontend/generation_stream.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/models/text_codec.h"
#include "serving/engine_loop.h"

namespace kvserve::server {
namespace {

constexpr char kScript[] = "hello world, hello again. ";
constexpr int kScriptLength = sizeof(kScript) - 1;

// Request r's i-th sampled token is the byte kScript[i % kScriptLength]; each step takes at
// least `step_delay`. Engine thread only.
class ScriptExecutor final : public serving::StepExecutor {
 public:
  explicit ScriptExecutor(std::chrono::milliseconds step_delay) : step_delay_(step_delay) {}
  serving::ExecutorShape shape() const override {
    return serving::ExecutorShape{.page_size = 16,
                                  .num_pages = 256,
                                  .vocab_size = ByteLevelCodec::kVocabSize,
                                  .context_length = 1024};
  }
  void AddSequence(const std::string& id, const engine::SamplingParams&,
                   absl::Span<const int32_t>) override {
    sampled_[id] = 0;
  }
  void RemoveSequence(const std::string& id) override { sampled_.erase(id); }
  absl::StatusOr<serving::StepResults> Execute(const scheduler::StepPlan& plan) override {
    std::this_thread::sleep_for(step_delay_);
    serving::StepResults out(plan.scheduled.size());
    for (size_t i = 0; i < plan.scheduled.size(); ++i) {
      if (!plan.scheduled[i].sample) continue;
      int& n = sampled_[plan.scheduled[i].request_id];
      out[i].emplace().token = static_cast<unsigned char>(kScript[n++ % kScriptLength]);
    }
    return out;
  }

 private:
  const std::chrono::milliseconds step_delay_;
  absl::flat_hash_map<std::string, int> sampled_;
};

std::unique_ptr<serving::EngineLoop> MakeLoop(
    std::chrono::milliseconds step_delay = std::chrono::milliseconds(0)) {
  serving::EngineLoopConfig config;
  config.scheduler.max_num_seqs = 16;
  auto loop = serving::EngineLoop::Create(std::make_unique<ScriptExecutor>(step_delay), config);
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(*loop);
}

BuiltRequest Request(int max_tokens, std::vector<std::string> stop_strings = {}) {
  BuiltRequest r;
  r.engine.prompt = {'h', 'i'};
  r.engine.stop.max_tokens = max_tokens;
  r.engine.stop.ignore_eos = true;
  r.engine.sampling.temperature = 0;
  r.stream.stop_strings = std::move(stop_strings);
  return r;
}

std::string Expected(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += kScript[i % kScriptLength];
  return s;
}

// What one consumer saw.
struct Seen {
  std::string text;
  bool finished = false;
  scheduler::FinishReason reason = scheduler::FinishReason::kStop;
  int32_t completion_tokens = 0;
};

// The HTTP way: block in WaitAndDrain until the last event; abort the engine when told to.
Seen ConsumeBlocking(GenerationStream& stream) {
  Seen seen;
  StreamEvent event;
  while (!seen.finished) {
    absl::StatusOr<bool> got = stream.WaitAndDrain(&event, absl::Now() + absl::Seconds(60));
    if (!got.ok() || !*got) {
      ADD_FAILURE() << "no output for " << stream.request_id() << ": " << got.status();
      break;
    }
    seen.text += event.text;
    if (event.abort_engine) stream.AbortEngine(scheduler::FinishReason::kStopString);
    if (event.finished) {
      seen.finished = true;
      seen.reason = event.finish_reason;
      seen.completion_tokens = event.completion_tokens;
    }
  }
  return seen;
}

TEST(GenerationStreamTest, ConcurrentBlockingConsumersEachGetTheirWholeText) {
  auto loop = MakeLoop();
  ByteLevelCodec codec;
  constexpr int kConsumers = 8;
  std::vector<Seen> seen(kConsumers);
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c] {
      auto stream = GenerationStream::Submit(loop.get(), &codec, Request(20 + c));
      ASSERT_TRUE(stream.ok()) << stream.status();
      seen[c] = ConsumeBlocking(**stream);
    });
  }
  for (std::thread& t : consumers) t.join();
  for (int c = 0; c < kConsumers; ++c) {
    EXPECT_TRUE(seen[c].finished) << c;
    EXPECT_EQ(seen[c].text, Expected(20 + c)) << c;
    EXPECT_EQ(seen[c].reason, scheduler::FinishReason::kLength) << c;
    EXPECT_EQ(seen[c].completion_tokens, 20 + c) << c;
  }
  ASSERT_TRUE(loop->WaitIdle(absl::Now() + absl::Seconds(30)));
}

// The gRPC way: the channel's notifier (engine thread) only flags work; a consumer thread drains
// with Drain() and, on a stop string, aborts the engine outside any lock.
TEST(GenerationStreamTest, NotifierWakesAConsumerThatDrainsAndStopsTheEngine) {
  auto loop = MakeLoop();
  ByteLevelCodec codec;
  auto stream = GenerationStream::Submit(loop.get(), &codec, Request(200, {"world"}));
  ASSERT_TRUE(stream.ok()) << stream.status();

  absl::Mutex mu;
  int wakeups = 0;  // guarded by mu
  (*stream)->channel().SetNotifier([&] {
    absl::MutexLock lock(&mu);
    ++wakeups;
  });
  Seen seen;
  std::thread consumer([&] {
    int handled = 0;
    while (!seen.finished) {
      {
        absl::MutexLock lock(&mu);
        auto woken = [&] { return wakeups > handled; };
        if (!mu.AwaitWithTimeout(absl::Condition(&woken), absl::Seconds(60))) {
          ADD_FAILURE() << "never woken";
          return;
        }
        handled = wakeups;
      }
      StreamEvent event;
      absl::StatusOr<bool> got = (*stream)->Drain(&event);
      ASSERT_TRUE(got.ok()) << got.status();
      seen.text += event.text;
      if (event.abort_engine) (*stream)->AbortEngine(scheduler::FinishReason::kStopString);
      if (event.finished) {
        seen.finished = true;
        seen.reason = event.finish_reason;
      }
    }
  });
  consumer.join();
  (*stream)->channel().SetNotifier(nullptr);
  EXPECT_TRUE(seen.finished);
  EXPECT_EQ(seen.text, "hello ");  // the stop string and what follows are cut
  EXPECT_EQ(seen.reason, scheduler::FinishReason::kStopString);
  ASSERT_TRUE(loop->WaitIdle(absl::Now() + absl::Seconds(30)));
  EXPECT_EQ(loop->Load().free_pages, loop->Load().total_pages);
}

// A client that goes away: another thread aborts while the consumer waits for outputs.
TEST(GenerationStreamTest, AbortFromAnotherThreadEndsABlockedConsumer) {
  auto loop = MakeLoop(std::chrono::milliseconds(2));  // 1000 tokens take >= 2 s
  ByteLevelCodec codec;
  auto stream = GenerationStream::Submit(loop.get(), &codec, Request(1000));
  ASSERT_TRUE(stream.ok()) << stream.status();
  Seen seen;
  std::thread consumer([&] { seen = ConsumeBlocking(**stream); });
  // Wait until the request is running, then cancel it from here.
  for (int i = 0; i < 2000 && loop->Load().running == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  (*stream)->AbortEngine(scheduler::FinishReason::kCancelled);
  consumer.join();
  EXPECT_TRUE(seen.finished);
  EXPECT_EQ(seen.reason, scheduler::FinishReason::kCancelled);
  EXPECT_LT(seen.completion_tokens, 1000);
  EXPECT_EQ(seen.text, Expected(seen.completion_tokens));
  ASSERT_TRUE(loop->WaitIdle(absl::Now() + absl::Seconds(30)));
}

}  // namespace
}  // namespace kvserve::server
