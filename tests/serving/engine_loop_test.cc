// EngineLoop over a real (synthetic, f32) model: continuous batching, prefix caching and
// preemption must not change any request's greedy tokens, and every page comes back.
#include "serving/engine_loop.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/llama_model.h"
#include "gtest/gtest.h"
#include "serving/model_executor.h"
#include "tests/engine/synthetic_model.h"

namespace kvserve::serving {
namespace {

using engine::testing::SyntheticSpec;

std::string ModelPath() {
  static const std::string path = [] {
    SyntheticSpec spec;
    spec.hidden = 64;
    spec.layers = 2;
    spec.heads = 4;
    spec.kv_heads = 2;
    spec.vocab = 256;
    spec.context = 1024;
    spec.seed = 42;
    return engine::testing::WriteSyntheticModel(spec);
  }();
  return path;
}

struct LoopOptions {
  int32_t num_pages = 512;
  int32_t page_size = 16;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 256;
  bool prefix_caching = true;
};

std::unique_ptr<EngineLoop> MakeLoop(const LoopOptions& o) {
  auto file = engine::GgufFile::Open(ModelPath());
  EXPECT_TRUE(file.ok()) << file.status();
  auto model = engine::LlamaModel::Load(std::shared_ptr<const engine::GgufFile>(std::move(*file)),
                                        engine::LoadOptions{});
  EXPECT_TRUE(model.ok()) << model.status();
  auto executor =
      ModelExecutor::Create(std::move(*model), o.page_size, o.num_pages, engine::KvDType::kF32);
  EXPECT_TRUE(executor.ok()) << executor.status();
  EngineLoopConfig config;
  config.scheduler.max_num_seqs = o.max_num_seqs;
  config.scheduler.max_num_batched_tokens = o.max_num_batched_tokens;
  config.scheduler.enable_prefix_caching = o.prefix_caching;
  auto loop = EngineLoop::Create(std::move(*executor), config);
  EXPECT_TRUE(loop.ok()) << loop.status();
  return std::move(*loop);
}

GenerationRequest Greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  r.sampling.temperature = 0;
  return r;
}

// Drains a channel: the generated ids and the final output.
std::vector<int32_t> Collect(OutputChannel& channel, RequestOutput* final_out) {
  std::vector<int32_t> ids;
  RequestOutput out;
  while (channel.Pop(&out, absl::Now() + absl::Seconds(120))) {
    for (const GeneratedToken& t : out.tokens) ids.push_back(t.token_id);
    if (out.finished) {
      *final_out = out;
      return ids;
    }
  }
  ADD_FAILURE() << "timed out waiting for " << channel.request_id();
  return ids;
}

// 32 prompts, lengths 1..300; every fourth shares a 100-token prefix with the others of its kind.
std::vector<std::vector<int32_t>> Prompts() {
  std::vector<std::vector<int32_t>> prompts;
  std::mt19937 rng(7);
  std::vector<int32_t> shared(100);
  for (int32_t& t : shared) t = rng() % 256;
  for (int i = 0; i < 32; ++i) {
    const int len = 1 + (i * 97) % 300;
    std::vector<int32_t> p;
    if (i % 4 == 0 && len > 100) p = shared;
    while (static_cast<int>(p.size()) < len) p.push_back(rng() % 256);
    prompts.push_back(p);
  }
  return prompts;
}

const std::vector<std::vector<int32_t>>& AloneOutputs() {
  static const std::vector<std::vector<int32_t>> outputs = [] {
    std::vector<std::vector<int32_t>> result;
    LoopOptions o;
    o.max_num_seqs = 1;
    o.prefix_caching = false;
    auto loop = MakeLoop(o);
    for (const auto& prompt : Prompts()) {
      auto channel = loop->Submit(Greedy(prompt, 12));
      EXPECT_TRUE(channel.ok()) << channel.status();
      RequestOutput final_out;
      result.push_back(Collect(**channel, &final_out));
    }
    return result;
  }();
  return outputs;
}

void ExpectAllPagesFree(EngineLoop& loop) {
  ASSERT_TRUE(loop.WaitIdle(absl::Now() + absl::Seconds(30)));
  // The load is published after the step that finished the last request.
  for (int i = 0; i < 100 && loop.Load().free_pages != loop.Load().total_pages; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const EngineLoad load = loop.Load();
  EXPECT_EQ(load.running, 0);
  EXPECT_EQ(load.waiting, 0);
  EXPECT_EQ(load.free_pages, load.total_pages) << "leaked KV pages";
}

struct BatchResult {
  int64_t preemptions = 0;
  int64_t prefix_hits = 0;
};

BatchResult RunConcurrentAndCompare(const LoopOptions& o) {
  auto loop = MakeLoop(o);
  const auto prompts = Prompts();
  std::vector<std::shared_ptr<OutputChannel>> channels;
  for (const auto& p : prompts) {
    auto c = loop->Submit(Greedy(p, 12));
    EXPECT_TRUE(c.ok()) << c.status();
    channels.push_back(*c);
  }
  for (size_t i = 0; i < channels.size(); ++i) {
    RequestOutput final_out;
    std::vector<int32_t> ids = Collect(*channels[i], &final_out);
    EXPECT_EQ(ids, AloneOutputs()[i])
        << "request " << i << " (prompt length " << prompts[i].size() << ")";
    EXPECT_EQ(final_out.finish_reason, scheduler::FinishReason::kLength);
    EXPECT_EQ(final_out.stats.num_output_tokens, 12);
    EXPECT_EQ(final_out.stats.num_prompt_tokens, static_cast<int32_t>(prompts[i].size()));
  }
  ExpectAllPagesFree(*loop);
  const EngineLoad load = loop->Load();
  return {load.preemptions, load.prefix_hit_tokens};
}

TEST(EngineLoopTest, ThirtyTwoConcurrentRequestsMatchEachAlone) {
  LoopOptions o;
  o.prefix_caching = false;
  BatchResult r = RunConcurrentAndCompare(o);
  EXPECT_EQ(r.prefix_hits, 0);
}

TEST(EngineLoopTest, PrefixCachingKeepsTokensAndHits) {
  LoopOptions o;
  o.prefix_caching = true;
  BatchResult r = RunConcurrentAndCompare(o);
  EXPECT_GT(r.prefix_hits, 0) << "the shared 100-token prefixes should be reused";
}

TEST(EngineLoopTest, TinyPoolPreemptsManyTimesAndKeepsTokens) {
  LoopOptions o;
  o.num_pages = 24;  // 384 token slots for 32 requests of up to 312 tokens
  o.prefix_caching = true;
  BatchResult r = RunConcurrentAndCompare(o);
  EXPECT_GT(r.preemptions, 5);
}

TEST(EngineLoopTest, RandomAbortsLeaveNoLeakedPage) {
  LoopOptions o;
  o.num_pages = 64;
  auto loop = MakeLoop(o);
  const auto prompts = Prompts();
  std::vector<std::shared_ptr<OutputChannel>> channels;
  for (const auto& p : prompts) {
    auto c = loop->Submit(Greedy(p, 40));
    ASSERT_TRUE(c.ok());
    channels.push_back(*c);
  }
  std::mt19937 rng(3);
  int aborted = 0;
  for (int round = 0; round < 16; ++round) {
    absl::SleepFor(absl::Milliseconds(rng() % 20));
    const auto& victim = channels[rng() % channels.size()];
    loop->Abort(victim->request_id());
  }
  for (auto& c : channels) {
    RequestOutput final_out;
    Collect(*c, &final_out);
    if (final_out.finish_reason == scheduler::FinishReason::kCancelled)
      ++aborted;
    else
      EXPECT_EQ(final_out.finish_reason, scheduler::FinishReason::kLength);
  }
  EXPECT_GT(aborted, 0);
  ExpectAllPagesFree(*loop);
}

TEST(EngineLoopTest, SubmitRejectsBadRequestsWithNamedErrors) {
  auto loop = MakeLoop(LoopOptions{});
  EXPECT_EQ(loop->Submit(Greedy({}, 4)).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_id = loop->Submit(Greedy({1, 999}, 4)).status();
  EXPECT_EQ(bad_id.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_id.message().find("999"), std::string::npos);
  auto too_long = loop->Submit(Greedy(std::vector<int32_t>(1000, 1), 100)).status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kOutOfRange);
  GenerationRequest bad_temp = Greedy({1, 2}, 4);
  bad_temp.sampling.temperature = -1;
  auto t = loop->Submit(bad_temp).status();
  EXPECT_EQ(t.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.message().find("temperature"), std::string::npos);
  GenerationRequest dup = Greedy({1, 2}, 200);
  dup.request_id = "same";
  ASSERT_TRUE(loop->Submit(dup).ok());
  EXPECT_EQ(loop->Submit(dup).status().code(), absl::StatusCode::kAlreadyExists);
  loop->Abort("same");
  ExpectAllPagesFree(*loop);
}

TEST(EngineLoopTest, FullQueueIsResourceExhausted) {
  // A loop that admits one request at a time and queues at most 2.
  auto file = engine::GgufFile::Open(ModelPath());
  ASSERT_TRUE(file.ok());
  auto model = engine::LlamaModel::Load(std::shared_ptr<const engine::GgufFile>(std::move(*file)),
                                        engine::LoadOptions{});
  ASSERT_TRUE(model.ok());
  auto executor = ModelExecutor::Create(std::move(*model), 16, 64, engine::KvDType::kF32);
  ASSERT_TRUE(executor.ok());
  EngineLoopConfig config;
  config.scheduler.max_num_seqs = 1;
  config.max_queued_requests = 2;
  auto loop = EngineLoop::Create(std::move(*executor), config);
  ASSERT_TRUE(loop.ok());
  std::vector<std::shared_ptr<OutputChannel>> accepted;
  absl::Status last;
  for (int i = 0; i < 10 && last.ok(); ++i) {
    auto c = (*loop)->Submit(Greedy({1, 2, 3}, 300));
    if (c.ok())
      accepted.push_back(*c);
    else
      last = c.status();
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted) << last;
  EXPECT_GE(accepted.size(), 2u);
  for (auto& c : accepted) (*loop)->Abort(c->request_id());
  ExpectAllPagesFree(**loop);
}

TEST(EngineLoopTest, SameSeedSameTokensAloneAndInBatch) {
  auto loop = MakeLoop(LoopOptions{});
  auto sampled = [](uint64_t seed) {
    GenerationRequest r = Greedy({5, 6, 7, 8}, 16);
    r.sampling.temperature = 1.0f;
    r.sampling.top_p = 0.9f;
    r.sampling.seed = seed;
    return r;
  };
  RequestOutput f;
  auto alone = loop->Submit(sampled(1234));
  ASSERT_TRUE(alone.ok());
  std::vector<int32_t> alone_ids = Collect(**alone, &f);
  std::vector<std::shared_ptr<OutputChannel>> others;
  for (int i = 0; i < 8; ++i) others.push_back(*loop->Submit(sampled(i)));
  auto in_batch = loop->Submit(sampled(1234));
  ASSERT_TRUE(in_batch.ok());
  EXPECT_EQ(Collect(**in_batch, &f), alone_ids);
  for (auto& c : others) Collect(*c, &f);
  ExpectAllPagesFree(*loop);
}

}  // namespace
}  // namespace kvserve::serving
