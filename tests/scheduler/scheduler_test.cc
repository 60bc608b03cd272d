#include "scheduler/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scheduler/fake_runner.h"

namespace kvserve::scheduler {
namespace {

using ::testing::ElementsAre;
using testing::FakeRunner;
using testing::GenerateAlone;
using ::testing::IsEmpty;

constexpr int32_t kVocab = 64;

std::vector<int32_t> Iota(int32_t n, int32_t first) {
  std::vector<int32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

std::vector<std::string> Ids(const StepPlan& plan) {
  std::vector<std::string> ids;
  for (const ScheduledRequest& row : plan.scheduled) ids.push_back(row.request_id);
  return ids;
}

StopConditions MaxTokens(int32_t max_tokens) {
  StopConditions stop;
  stop.max_tokens = max_tokens;
  return stop;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void Init(const SchedulerConfig& config) {
    config_ = config;
    auto scheduler = Scheduler::Create(config);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = *std::move(scheduler);
    runner_ = std::make_unique<FakeRunner>(config.page_size, config.num_pages, kVocab);
  }

  // After every test: whatever is left is aborted, and then no page may be held by anyone.
  void TearDown() override {
    if (scheduler_ == nullptr) return;
    for (const auto& [id, prompt] : prompts_) (void)scheduler_->Abort(id);
    EXPECT_FALSE(scheduler_->has_unfinished_requests());
    EXPECT_EQ(scheduler_->num_free_pages(), config_.num_pages);
    EXPECT_EQ(scheduler_->kv_cache_manager().num_requests_with_pages(), 0);
    for (PageId page = 0; page < config_.num_pages; ++page) {
      EXPECT_EQ(scheduler_->kv_cache_manager().block_pool().ref_count(page), 0) << page;
    }
    EXPECT_THAT(runner_->errors(), IsEmpty());
  }

  absl::Status Add(const std::string& id, std::vector<int32_t> prompt, StopConditions stop) {
    prompts_[id] = prompt;
    stops_[id] = stop;
    return scheduler_->AddRequest(std::make_unique<Request>(id, std::move(prompt), stop));
  }

  // Schedule, check the plan, run the fake model, update; records outputs and finish reasons.
  StepPlan Step() {
    const std::vector<std::string> running_before = DecodeFirst(scheduler_->RunningIds());
    const std::vector<std::string> waiting_before = scheduler_->WaitingIds();
    StepPlan plan = scheduler_->Schedule();
    CheckPlan(plan, running_before, waiting_before);
    const SampledTokens sampled = runner_->Execute(plan);
    absl::StatusOr<UpdateResult> result = scheduler_->Update(plan, sampled);
    EXPECT_TRUE(result.ok()) << result.status();
    if (result.ok()) {
      for (const RequestEvent& event : result->events) {
        EXPECT_FALSE(reasons_.contains(event.request_id)) << "event after finish";
        if (event.new_token.has_value()) outputs_[event.request_id].push_back(*event.new_token);
        if (event.finish_reason.has_value()) {
          reasons_[event.request_id] = std::string(FinishReasonName(*event.finish_reason));
        }
      }
    }
    ++num_steps_;
    return plan;
  }

  void RunToCompletion(int max_steps = 2000) {
    for (int i = 0; i < max_steps && scheduler_->has_unfinished_requests(); ++i) Step();
    ASSERT_FALSE(scheduler_->has_unfinished_requests()) << "no progress after " << max_steps;
  }

  // Every finished, non-aborted request produced what the model produces alone.
  void ExpectOutputsMatchModelRunAlone() {
    for (const auto& [id, prompt] : prompts_) {
      auto reason = reasons_.find(id);
      if (reason == reasons_.end()) continue;
      std::string expected_reason;
      const std::vector<int32_t> expected =
          GenerateAlone(prompt, stops_[id], config_.max_model_len, kVocab, &expected_reason);
      if (reason->second == "cancelled") {
        const std::vector<int32_t>& got = outputs_[id];
        ASSERT_LE(got.size(), expected.size()) << id;
        EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin())) << id;
      } else {
        EXPECT_EQ(outputs_[id], expected) << id;
        EXPECT_EQ(reason->second, expected_reason) << id;
      }
    }
  }

  // Running ids (admission order) with those that have one token left to compute (decoding)
  // moved ahead of those still prefilling, each group keeping its order.
  std::vector<std::string> DecodeFirst(const std::vector<std::string>& running) const {
    std::vector<std::string> decoding, prefilling;
    for (const std::string& id : running) {
      const Request* r = scheduler_->GetRequest(id);
      (r->num_tokens() - r->num_computed_tokens() == 1 ? decoding : prefilling).push_back(id);
    }
    decoding.insert(decoding.end(), prefilling.begin(), prefilling.end());
    return decoding;
  }

  // Invariants every plan must satisfy, given the running list before Schedule() in decode-first
  // order and the waiting list.
  void CheckPlan(const StepPlan& plan, const std::vector<std::string>& running_before,
                 const std::vector<std::string>& waiting_before) {
    const int32_t page_size = config_.page_size;
    EXPECT_LE(static_cast<int32_t>(plan.scheduled.size()), config_.max_num_seqs);
    EXPECT_LE(scheduler_->num_running(), config_.max_num_seqs);
    int total = 0;
    absl::flat_hash_set<std::string> ids;
    absl::flat_hash_map<PageId, std::vector<std::pair<int32_t, int32_t>>> page_uses;  // (k, start)
    for (const ScheduledRequest& row : plan.scheduled) {
      EXPECT_TRUE(ids.insert(row.request_id).second) << "scheduled twice: " << row.request_id;
      const Request* request = scheduler_->GetRequest(row.request_id);
      ASSERT_NE(request, nullptr) << row.request_id;
      EXPECT_EQ(request->state(), RequestState::kRunning);
      const int32_t n = static_cast<int32_t>(row.token_ids.size());
      const int32_t end = row.start_position + n;
      EXPECT_GT(n, 0);
      if (config_.long_prefill_token_threshold > 0) {
        EXPECT_LE(n, config_.long_prefill_token_threshold);
      }
      EXPECT_EQ(row.start_position, request->num_computed_tokens());
      ASSERT_LE(end, request->num_tokens());
      EXPECT_TRUE(std::equal(row.token_ids.begin(), row.token_ids.end(),
                             request->all_token_ids().begin() + row.start_position));
      EXPECT_EQ(row.sample, end == request->num_tokens());
      EXPECT_EQ(static_cast<int32_t>(row.page_table.size()), (end + page_size - 1) / page_size);
      for (size_t k = 0; k < row.page_table.size(); ++k) {
        page_uses[row.page_table[k]].push_back({static_cast<int32_t>(k), row.start_position});
      }
      total += n;
    }
    EXPECT_EQ(plan.total_tokens, total);
    EXPECT_LE(total, config_.max_num_batched_tokens);
    // A page in two page tables is a shared prefix page: full and computed in both, never written.
    for (const auto& [page, uses] : page_uses) {
      if (uses.size() < 2) continue;
      for (const auto& [k, start] : uses) {
        EXPECT_LE((k + 1) * page_size, start) << "shared page " << page << " written";
      }
    }
    // Preemption takes the last in decode-first order first and blocks admission for the step.
    for (size_t i = 0; i < plan.preempted_ids.size(); ++i) {
      ASSERT_LT(i, running_before.size());
      EXPECT_EQ(plan.preempted_ids[i], running_before[running_before.size() - 1 - i]);
      EXPECT_FALSE(ids.contains(plan.preempted_ids[i]));
    }
    std::vector<std::string> old_scheduled, admitted;
    for (const ScheduledRequest& row : plan.scheduled) {
      const bool was_running = std::find(running_before.begin(), running_before.end(),
                                         row.request_id) != running_before.end();
      (was_running ? old_scheduled : admitted).push_back(row.request_id);
    }
    // Running requests go first, decoding ones then prefilling ones, each in admission order,
    // with no gaps.
    ASSERT_LE(old_scheduled.size(), running_before.size());
    EXPECT_TRUE(std::equal(old_scheduled.begin(), old_scheduled.end(), running_before.begin()));
    for (size_t i = 0; i < old_scheduled.size(); ++i) {
      EXPECT_EQ(plan.scheduled[i].request_id, old_scheduled[i]);
    }
    if (!plan.preempted_ids.empty()) {
      EXPECT_THAT(admitted, IsEmpty()) << "admitted after preempting";
    }
    // FCFS: the newly admitted are the head of the waiting queue, in order.
    ASSERT_LE(admitted.size(), waiting_before.size());
    EXPECT_TRUE(std::equal(admitted.begin(), admitted.end(), waiting_before.begin()));
    // Page accounting: every held page is counted once per holder, and held + free = all.
    absl::flat_hash_map<PageId, int32_t> holders;
    const KvCacheManager& kv = scheduler_->kv_cache_manager();
    for (const std::string& id : scheduler_->RunningIds()) {
      for (PageId page : kv.PageTable(id)) ++holders[page];
    }
    for (const std::string& id : scheduler_->WaitingIds()) EXPECT_THAT(kv.PageTable(id), IsEmpty());
    for (const auto& [page, count] : holders) {
      EXPECT_EQ(kv.block_pool().ref_count(page), count) << page;
    }
    EXPECT_EQ(static_cast<int32_t>(holders.size()) + scheduler_->num_free_pages(),
              config_.num_pages);
  }

  SchedulerConfig config_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<FakeRunner> runner_;
  std::map<std::string, std::vector<int32_t>> prompts_;
  absl::flat_hash_map<std::string, StopConditions> stops_;
  absl::flat_hash_map<std::string, std::vector<int32_t>> outputs_;
  absl::flat_hash_map<std::string, std::string> reasons_;
  int num_steps_ = 0;
};

SchedulerConfig SmallConfig() {
  SchedulerConfig config;
  config.max_num_seqs = 8;
  config.max_num_batched_tokens = 64;
  config.page_size = 4;
  config.num_pages = 64;
  config.max_model_len = 256;
  return config;
}

TEST(SchedulerConfigTest, RejectsNonPositiveSizes) {
  SchedulerConfig config = SmallConfig();
  EXPECT_TRUE(Scheduler::Create(config).ok());
  config.num_pages = 0;
  absl::StatusOr<std::unique_ptr<Scheduler>> bad = Scheduler::Create(config);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("num_pages"));
  config = SmallConfig();
  config.long_prefill_token_threshold = -1;
  EXPECT_EQ(Scheduler::Create(config).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, AddRequestValidates) {
  SchedulerConfig config = SmallConfig();
  config.max_model_len = 16;
  config.num_pages = 3;  // 12 positions
  Init(config);
  EXPECT_TRUE(Add("ok", Iota(4, 1), MaxTokens(4)).ok());
  EXPECT_EQ(Add("ok", Iota(4, 1), MaxTokens(4)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Add("empty", {}, MaxTokens(4)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Add("zero", Iota(4, 1), MaxTokens(0)).code(), absl::StatusCode::kInvalidArgument);
  // 16 prompt tokens fill the 16-token context: no room for output.
  EXPECT_EQ(Add("full", Iota(16, 1), MaxTokens(1)).code(), absl::StatusCode::kInvalidArgument);
  StopConditions short_context = MaxTokens(4);
  short_context.max_context_length = 8;
  EXPECT_EQ(Add("short", Iota(8, 1), short_context).code(), absl::StatusCode::kInvalidArgument);
  // 10 prompt + 4 output: 13 positions need KV = 4 pages > 3 in the pool.
  EXPECT_EQ(Add("huge", Iota(10, 1), MaxTokens(4)).code(), absl::StatusCode::kInvalidArgument);
  // 10 + 3: 12 positions, exactly the pool.
  EXPECT_TRUE(Add("fits", Iota(10, 1), MaxTokens(3)).ok());
  EXPECT_EQ(scheduler_->AddRequest(nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_->num_waiting(), 2);
  RunToCompletion();
  for (const std::string id : {"empty", "zero", "full", "short", "huge"}) prompts_.erase(id);
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, SingleRequestMatchesModelRunAlone) {
  Init(SmallConfig());
  ASSERT_TRUE(Add("a", Iota(7, 3), MaxTokens(12)).ok());
  RunToCompletion();
  EXPECT_EQ(outputs_["a"].size(), 12u);
  EXPECT_EQ(reasons_["a"], "length");
  EXPECT_EQ(num_steps_, 12);  // one prefill step, then one token per step
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, BudgetAndMaxNumSeqsAreNeverExceeded) {
  SchedulerConfig config = SmallConfig();
  config.max_num_seqs = 3;
  config.max_num_batched_tokens = 10;
  Init(config);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(Add(absl::StrCat("r", i), Iota(3 + 2 * i, 10 * i), MaxTokens(5)).ok());
  }
  bool saw_full_batch = false, saw_full_budget = false;
  while (scheduler_->has_unfinished_requests()) {
    const StepPlan plan = Step();  // CheckPlan asserts the limits on every plan
    saw_full_batch |= plan.scheduled.size() == 3;
    saw_full_budget |= plan.total_tokens == 10;
    ASSERT_LT(num_steps_, 500);
  }
  EXPECT_TRUE(saw_full_batch);
  EXPECT_TRUE(saw_full_budget);
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, AdmitsFirstComeFirstServed) {
  SchedulerConfig config = SmallConfig();
  config.max_num_seqs = 2;
  Init(config);
  // Later requests are shorter, so only a FCFS queue admits them in arrival order.
  const std::vector<int32_t> max_tokens = {6, 1, 5, 1, 2};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Add(absl::StrCat("r", i), Iota(4, 10 * i), MaxTokens(max_tokens[i])).ok());
  }
  std::vector<std::string> admission_order;
  absl::flat_hash_set<std::string> seen;
  while (scheduler_->has_unfinished_requests()) {
    for (const std::string& id : Ids(Step())) {
      if (seen.insert(id).second) admission_order.push_back(id);
    }
    ASSERT_LT(num_steps_, 100);
  }
  EXPECT_THAT(admission_order, ElementsAre("r0", "r1", "r2", "r3", "r4"));
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, AdmissionStopsAtFirstRequestWithoutPages) {
  SchedulerConfig config = SmallConfig();
  config.num_pages = 6;
  Init(config);
  ASSERT_TRUE(Add("a", Iota(16, 1), MaxTokens(4)).ok());  // 4 pages, a 5th when decoding
  EXPECT_THAT(Ids(Step()), ElementsAre("a"));
  ASSERT_TRUE(Add("big", Iota(12, 100), MaxTokens(2)).ok());   // needs 3 pages
  ASSERT_TRUE(Add("small", Iota(3, 200), MaxTokens(2)).ok());  // needs 1 page
  // a takes its 5th page; 1 is left: not enough for "big", and "small" may not jump the queue.
  EXPECT_THAT(Ids(Step()), ElementsAre("a"));
  EXPECT_EQ(scheduler_->num_free_pages(), 1);
  EXPECT_THAT(scheduler_->WaitingIds(), ElementsAre("big", "small"));
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, ChunksPromptLongerThanBudget) {
  SchedulerConfig config = SmallConfig();
  config.max_num_batched_tokens = 8;
  Init(config);
  ASSERT_TRUE(Add("long", Iota(20, 1), MaxTokens(3)).ok());
  std::vector<std::tuple<int32_t, size_t, bool>> rows;  // (start, size, sample)
  while (scheduler_->has_unfinished_requests()) {
    const StepPlan plan = Step();
    ASSERT_EQ(plan.scheduled.size(), 1u);
    const ScheduledRequest& row = plan.scheduled[0];
    rows.emplace_back(row.start_position, row.token_ids.size(), row.sample);
  }
  using Row = std::tuple<int32_t, size_t, bool>;
  EXPECT_THAT(rows, ElementsAre(Row{0, 8, false}, Row{8, 8, false}, Row{16, 4, true},
                                Row{20, 1, true}, Row{21, 1, true}));
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, ChunkedPrefillSharesBudgetWithDecode) {
  SchedulerConfig config = SmallConfig();
  config.max_num_batched_tokens = 8;
  Init(config);
  ASSERT_TRUE(Add("decoder", Iota(2, 1), MaxTokens(10)).ok());
  Step();
  ASSERT_TRUE(Add("prompt", Iota(20, 50), MaxTokens(2)).ok());
  const StepPlan plan = Step();
  ASSERT_THAT(Ids(plan), ElementsAre("decoder", "prompt"));
  EXPECT_EQ(plan.scheduled[0].token_ids.size(), 1u);  // decode first
  EXPECT_EQ(plan.scheduled[1].token_ids.size(), 7u);  // the rest of the budget
  EXPECT_FALSE(plan.scheduled[1].sample);
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, DecodingStreamsGoBeforeAnOlderPrefill) {
  SchedulerConfig config = SmallConfig();
  config.max_num_batched_tokens = 8;
  config.long_prefill_token_threshold = 6;
  Init(config);
  ASSERT_TRUE(Add("prefill", Iota(30, 1), MaxTokens(2)).ok());
  ASSERT_TRUE(Add("decoder", Iota(2, 100), MaxTokens(10)).ok());
  ASSERT_THAT(Ids(Step()), ElementsAre("prefill", "decoder"));  // admission order: 6 + 2
  const StepPlan plan = Step();
  ASSERT_THAT(Ids(plan), ElementsAre("decoder", "prefill"));  // the decoder no longer waits
  EXPECT_EQ(plan.scheduled[0].token_ids.size(), 1u);
  EXPECT_EQ(plan.scheduled[1].token_ids.size(), 6u);
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

// The latency property of chunked prefill, in counts of steps (no timings): while 8 streams
// decode, a 2000-token prompt arrives; every step until it is prefilled gives each stream its
// token and stays within the budget, so no stream waits behind a step bigger than the budget.
TEST_F(SchedulerTest, LongPromptNeverStallsDecodingStreams) {
  SchedulerConfig config = SmallConfig();
  config.max_num_seqs = 16;
  config.max_num_batched_tokens = 256;
  config.page_size = 16;
  config.num_pages = 256;
  config.max_model_len = 4096;
  Init(config);
  std::vector<std::string> streams;
  for (int i = 0; i < 8; ++i) {
    streams.push_back("s" + std::to_string(i));
    ASSERT_TRUE(Add(streams.back(), Iota(4, 10 * i + 1), MaxTokens(100)).ok());
  }
  Step();  // all eight prompts in one step
  ASSERT_TRUE(Add("long", Iota(2000, 1000), MaxTokens(4)).ok());
  int steps_with_prefill = 0;
  while (scheduler_->GetRequest("long")->num_output_tokens() == 0) {
    const StepPlan plan = Step();
    EXPECT_LE(plan.total_tokens, config.max_num_batched_tokens);
    std::vector<std::string> decoded;
    for (const ScheduledRequest& row : plan.scheduled) {
      if (row.request_id != "long") {
        EXPECT_EQ(row.token_ids.size(), 1u);
        decoded.push_back(row.request_id);
      }
    }
    EXPECT_EQ(decoded, streams) << "a stream skipped a step during the long prefill";
    ++steps_with_prefill;
    ASSERT_LT(steps_with_prefill, 20);
  }
  EXPECT_EQ(steps_with_prefill, (2000 + 247) / 248);  // 248 = 256 - 8 prompt tokens per step
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, LongPrefillThresholdCapsEachRequest) {
  SchedulerConfig config = SmallConfig();
  config.max_num_batched_tokens = 16;
  config.long_prefill_token_threshold = 5;
  Init(config);
  ASSERT_TRUE(Add("a", Iota(12, 1), MaxTokens(2)).ok());
  ASSERT_TRUE(Add("b", Iota(12, 100), MaxTokens(2)).ok());
  std::vector<int> sizes;
  for (int i = 0; i < 3; ++i) {
    const StepPlan plan = Step();
    ASSERT_EQ(plan.scheduled.size(), 2u);
    EXPECT_EQ(plan.scheduled[0].token_ids.size(), plan.scheduled[1].token_ids.size());
    sizes.push_back(static_cast<int>(plan.scheduled[0].token_ids.size()));
  }
  EXPECT_THAT(sizes, ElementsAre(5, 5, 2));
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, PreemptsYoungestFirstAdmitsNobodyAndRecomputes) {
  SchedulerConfig config = SmallConfig();
  config.num_pages = 7;
  Init(config);
  ASSERT_TRUE(Add("a", Iota(4, 1), MaxTokens(8)).ok());
  ASSERT_TRUE(Add("b", Iota(4, 20), MaxTokens(8)).ok());
  ASSERT_TRUE(Add("c", Iota(8, 40), MaxTokens(8)).ok());
  // Step 1 admits all (1 + 1 + 2 pages); step 2 computes positions 4, 4, 8 (a new page each:
  // the pool is full); steps 3-5 fill those pages.
  for (int step = 1; step <= 5; ++step) {
    const StepPlan plan = Step();
    EXPECT_THAT(Ids(plan), ElementsAre("a", "b", "c")) << step;
    EXPECT_THAT(plan.preempted_ids, IsEmpty()) << step;
    if (step == 2) {
      ASSERT_TRUE(Add("d", Iota(2, 90), MaxTokens(3)).ok());  // no free page
    }
  }
  EXPECT_EQ(scheduler_->num_free_pages(), 0);
  // Step 6: a and b need a 4th page... a new page each; c (youngest) is preempted for them.
  const StepPlan plan = Step();
  EXPECT_THAT(plan.preempted_ids, ElementsAre("c"));
  EXPECT_THAT(Ids(plan), ElementsAre("a", "b"));
  // c freed 3 pages and a, b took 2; c, back at the head of the queue, comes before d.
  EXPECT_EQ(scheduler_->num_free_pages(), 1);
  EXPECT_THAT(scheduler_->WaitingIds(), ElementsAre("c", "d"));
  EXPECT_EQ(scheduler_->GetRequest("c")->num_preemptions(), 1);
  EXPECT_EQ(scheduler_->GetRequest("c")->num_computed_tokens(), 0);
  EXPECT_EQ(scheduler_->GetRequest("c")->state(), RequestState::kPreempted);
  EXPECT_EQ(scheduler_->num_preemptions(), 1);
  RunToCompletion();
  EXPECT_EQ(reasons_.size(), 4u);
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, NoAdmissionInAStepThatPreempted) {
  SchedulerConfig config = SmallConfig();
  config.enable_prefix_caching = false;
  config.max_num_batched_tokens = 8;
  config.num_pages = 5;
  Init(config);
  ASSERT_TRUE(Add("a", Iota(4, 1), MaxTokens(10)).ok());
  ASSERT_TRUE(Add("b", Iota(12, 30), MaxTokens(4)).ok());
  // Step 1: a 4 tokens (1 page), b a 4-token chunk (1 page). Step 2: a position 4 (a 2nd
  // page), b positions 4..10 (2 more pages): the pool is full. Step 3: a position 5, b position
  // 11 (sampled).
  for (int step = 1; step <= 3; ++step) EXPECT_THAT(Ids(Step()), ElementsAre("a", "b")) << step;
  EXPECT_EQ(scheduler_->num_free_pages(), 0);
  // Step 4: b needs a 4th page for position 12 and is the youngest: it preempts itself and
  // frees 3 pages. Readmitting it from scratch would need 2 pages for a 7-token chunk, which are
  // free, but a step that preempted admits nobody (that would thrash).
  const StepPlan plan = Step();
  EXPECT_THAT(plan.preempted_ids, ElementsAre("b"));
  EXPECT_THAT(Ids(plan), ElementsAre("a"));
  EXPECT_EQ(scheduler_->num_free_pages(), 3);
  EXPECT_THAT(scheduler_->WaitingIds(), ElementsAre("b"));
  const StepPlan next = Step();
  ASSERT_THAT(Ids(next), ElementsAre("a", "b"));
  EXPECT_EQ(next.scheduled[1].start_position, 0);  // recomputed from scratch
  EXPECT_EQ(next.scheduled[1].token_ids.size(), 7u);
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, RequestCanPreemptItself) {
  SchedulerConfig config = SmallConfig();
  config.num_pages = 4;
  Init(config);
  ASSERT_TRUE(Add("a", Iota(6, 1), MaxTokens(2)).ok());
  ASSERT_TRUE(Add("b", Iota(8, 30), MaxTokens(2)).ok());
  EXPECT_THAT(Ids(Step()), ElementsAre("a", "b"));  // 2 + 2 pages: the pool is full
  // a computes position 6 in its own page; b needs a page for position 8 and is the youngest.
  const StepPlan plan = Step();
  EXPECT_THAT(Ids(plan), ElementsAre("a"));
  EXPECT_THAT(plan.preempted_ids, ElementsAre("b"));
  EXPECT_EQ(reasons_["a"], "length");
  // b comes back with its 2 computed full pages still cached: only position 8 is recomputed.
  const int64_t hits_before = scheduler_->prefix_hit_tokens();
  const StepPlan again = Step();
  ASSERT_THAT(Ids(again), ElementsAre("b"));
  EXPECT_EQ(again.scheduled[0].start_position, 8);
  EXPECT_EQ(scheduler_->prefix_hit_tokens() - hits_before, 8);
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, AbortsWaitingAndRunningRequests) {
  SchedulerConfig config = SmallConfig();
  config.max_num_seqs = 2;
  Init(config);
  ASSERT_TRUE(Add("a", Iota(5, 1), MaxTokens(6)).ok());
  ASSERT_TRUE(Add("b", Iota(9, 20), MaxTokens(6)).ok());
  ASSERT_TRUE(Add("c", Iota(3, 40), MaxTokens(6)).ok());
  EXPECT_THAT(Ids(Step()), ElementsAre("a", "b"));
  const int32_t free_before = scheduler_->num_free_pages();
  ASSERT_TRUE(scheduler_->Abort("b").ok());  // running: its 3 pages come back at once
  EXPECT_EQ(scheduler_->num_free_pages(), free_before + 3);
  ASSERT_TRUE(scheduler_->Abort("c").ok());  // waiting
  EXPECT_EQ(scheduler_->Abort("c").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->Abort("nobody").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->num_waiting(), 0);
  EXPECT_EQ(scheduler_->num_running(), 1);
  StepPlan plan = scheduler_->Schedule();
  EXPECT_THAT(plan.finished_ids, ElementsAre("b", "c"));
  EXPECT_THAT(Ids(plan), ElementsAre("a"));
  absl::StatusOr<UpdateResult> result = scheduler_->Update(plan, runner_->Execute(plan));
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->events.size(), 3u);
  EXPECT_EQ(result->events[0].request_id, "b");
  EXPECT_EQ(result->events[0].finish_reason, FinishReason::kCancelled);
  EXPECT_FALSE(result->events[0].new_token.has_value());
  EXPECT_EQ(result->events[1].request_id, "c");
  EXPECT_EQ(result->events[2].request_id, "a");
  EXPECT_TRUE(result->events[2].new_token.has_value());
  // Aborted between Schedule and Update: the step's result for it is dropped.
  plan = scheduler_->Schedule();
  EXPECT_THAT(plan.finished_ids, IsEmpty());
  ASSERT_TRUE(scheduler_->Abort("a").ok());
  result = scheduler_->Update(plan, runner_->Execute(plan));
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->events.size(), 1u);
  EXPECT_EQ(result->events[0].finish_reason, FinishReason::kCancelled);
  EXPECT_THAT(scheduler_->Schedule().finished_ids, ElementsAre("a"));
}

TEST_F(SchedulerTest, UpdateRejectsMissingSampledTokenAndChangesNothing) {
  Init(SmallConfig());
  ASSERT_TRUE(Add("a", Iota(5, 1), MaxTokens(3)).ok());
  const StepPlan plan = scheduler_->Schedule();
  absl::StatusOr<UpdateResult> result = scheduler_->Update(plan, {});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("'a'"));
  EXPECT_EQ(scheduler_->GetRequest("a")->num_computed_tokens(), 0);
  ASSERT_TRUE(scheduler_->Update(plan, runner_->Execute(plan)).ok());
  EXPECT_EQ(scheduler_->GetRequest("a")->num_computed_tokens(), 5);
  // The same plan twice is stale.
  EXPECT_EQ(scheduler_->Update(plan, runner_->Execute(plan)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, SharedPrefixPagesAreReusedAndReferenceCounted) {
  Init(SmallConfig());
  const std::vector<int32_t> shared = Iota(8, 1);  // two full pages
  std::vector<int32_t> a_prompt = shared, b_prompt = shared;
  a_prompt.insert(a_prompt.end(), {100, 101});
  b_prompt.insert(b_prompt.end(), {200, 201, 202});
  ASSERT_TRUE(Add("a", a_prompt, MaxTokens(6)).ok());
  const StepPlan first = Step();
  const std::vector<int32_t> a_pages = first.scheduled[0].page_table;
  ASSERT_TRUE(Add("b", b_prompt, MaxTokens(6)).ok());
  const StepPlan second = Step();
  ASSERT_THAT(Ids(second), ElementsAre("a", "b"));
  const ScheduledRequest& b = second.scheduled[1];
  EXPECT_EQ(b.start_position, 8);
  EXPECT_THAT(b.token_ids, ElementsAre(200, 201, 202));
  EXPECT_EQ(b.page_table[0], a_pages[0]);
  EXPECT_EQ(b.page_table[1], a_pages[1]);
  EXPECT_NE(b.page_table[2], a_pages[2]);
  EXPECT_EQ(scheduler_->GetRequest("b")->num_cached_prompt_tokens(), 8);
  EXPECT_EQ(scheduler_->GetRequest("a")->num_cached_prompt_tokens(), 0);
  EXPECT_EQ(scheduler_->prefix_query_tokens(), 10 + 11);
  EXPECT_EQ(scheduler_->prefix_hit_tokens(), 8);
  const BlockPool& pool = scheduler_->kv_cache_manager().block_pool();
  EXPECT_EQ(pool.ref_count(a_pages[0]), 2);
  ASSERT_TRUE(scheduler_->Abort("a").ok());  // b keeps the shared pages
  EXPECT_EQ(pool.ref_count(a_pages[0]), 1);
  EXPECT_EQ(pool.ref_count(a_pages[1]), 1);
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
  // Both finished: the shared pages are free but still cached, and a new request revives them.
  EXPECT_EQ(pool.ref_count(a_pages[0]), 0);
  ASSERT_TRUE(Add("c", b_prompt, MaxTokens(2)).ok());
  const StepPlan revived = Step();
  EXPECT_EQ(revived.scheduled[0].page_table[0], a_pages[0]);
  EXPECT_EQ(revived.scheduled[0].page_table[1], a_pages[1]);
  EXPECT_EQ(revived.scheduled[0].start_position, 8);
  RunToCompletion();
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, PrefixCachingCanBeDisabled) {
  SchedulerConfig config = SmallConfig();
  config.enable_prefix_caching = false;
  Init(config);
  ASSERT_TRUE(Add("a", Iota(10, 1), MaxTokens(2)).ok());
  RunToCompletion();
  ASSERT_TRUE(Add("b", Iota(10, 1), MaxTokens(2)).ok());
  EXPECT_EQ(Step().scheduled[0].start_position, 0);
  RunToCompletion();
  EXPECT_EQ(scheduler_->prefix_hit_tokens(), 0);
  EXPECT_EQ(outputs_["a"], outputs_["b"]);
  ExpectOutputsMatchModelRunAlone();
}

TEST_F(SchedulerTest, FinishesOnEosStopTokenMaxTokensAndContext) {
  SchedulerConfig config = SmallConfig();
  config.max_model_len = 20;
  Init(config);
  const std::vector<int32_t> prompt = Iota(6, 7);
  // What the model says, uninterrupted, for 12 tokens; pick a token first seen at index i >= 2.
  const std::vector<int32_t> free_run = GenerateAlone(prompt, MaxTokens(12), 20, kVocab);
  size_t i = 2;
  while (std::find(free_run.begin(), free_run.begin() + i, free_run[i]) != free_run.begin() + i) {
    ++i;
  }
  ASSERT_LT(i, free_run.size());
  const int32_t marker = free_run[i];

  StopConditions eos = MaxTokens(12);
  eos.eos_token_ids = {marker};
  ASSERT_TRUE(Add("eos", prompt, eos).ok());
  StopConditions ignored = eos;
  ignored.ignore_eos = true;
  ASSERT_TRUE(Add("ignore_eos", prompt, ignored).ok());
  StopConditions stop_token = ignored;
  stop_token.stop_token_ids = {marker};  // stop tokens apply even with ignore_eos
  ASSERT_TRUE(Add("stop_token", prompt, stop_token).ok());
  ASSERT_TRUE(Add("max_tokens", prompt, MaxTokens(3)).ok());
  ASSERT_TRUE(Add("context", prompt, MaxTokens(100)).ok());  // 20 - 6 = 14 outputs
  StopConditions own_context = MaxTokens(100);
  own_context.max_context_length = 9;
  ASSERT_TRUE(Add("own_context", prompt, own_context).ok());
  RunToCompletion();

  const std::vector<int32_t> until_marker(free_run.begin(), free_run.begin() + i + 1);
  EXPECT_EQ(outputs_["eos"], until_marker);
  EXPECT_EQ(reasons_["eos"], "stop");
  EXPECT_EQ(outputs_["ignore_eos"], free_run);
  EXPECT_EQ(reasons_["ignore_eos"], "length");
  EXPECT_EQ(outputs_["stop_token"], until_marker);
  EXPECT_EQ(reasons_["stop_token"], "stop");
  EXPECT_EQ(outputs_["max_tokens"].size(), 3u);
  EXPECT_EQ(reasons_["max_tokens"], "length");
  EXPECT_EQ(outputs_["context"].size(), 14u);
  EXPECT_EQ(reasons_["context"], "context_length");
  EXPECT_EQ(outputs_["own_context"].size(), 3u);
  EXPECT_EQ(reasons_["own_context"], "context_length");
  ExpectOutputsMatchModelRunAlone();
}

TEST(RequestTest, StopTokenWinsOverLengthLimits) {
  StopConditions stop = MaxTokens(1);
  stop.eos_token_ids = {5};
  stop.max_context_length = 3;
  Request request("r", {1, 2}, stop);
  EXPECT_FALSE(request.CheckStop(100).has_value());
  request.AppendOutputToken(5);  // EOS, max_tokens and context length all at once
  EXPECT_EQ(request.CheckStop(100), FinishReason::kStop);
  Request other("o", {1, 2}, MaxTokens(1));
  other.AppendOutputToken(9);
  EXPECT_EQ(other.CheckStop(3), FinishReason::kLength);
  EXPECT_EQ(FinishReasonName(FinishReason::kContextLength), "context_length");
  EXPECT_EQ(FinishReasonOf(RequestState::kFinishedAborted), FinishReason::kCancelled);
  EXPECT_FALSE(IsFinished(RequestState::kPreempted));
}

// Many requests with shared prefixes, random lengths and random aborts on a tiny pool: every
// plan satisfies the invariants, and every request's output is what the model produces alone.
TEST_F(SchedulerTest, RandomizedStress) {
  // Totals over all seeds, to show the stress reached every mechanism.
  int64_t preemptions = 0, prefix_hits = 0, aborts = 0, chunks = 0, steps = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 rng(seed);
    auto uniform = [&rng](int lo, int hi) {
      return std::uniform_int_distribution<int>(lo, hi)(rng);
    };
    if (scheduler_ != nullptr) TearDown();  // previous seed must have left the pool full
    prompts_.clear();
    stops_.clear();
    outputs_.clear();
    reasons_.clear();
    SchedulerConfig config;
    config.page_size = uniform(1, 5);
    config.num_pages = uniform(6, 14);
    config.max_num_seqs = uniform(1, 6);
    config.max_num_batched_tokens = uniform(3, 24);
    config.max_model_len = uniform(16, 40);
    config.enable_prefix_caching = seed % 4 != 0;
    config.long_prefill_token_threshold = seed % 3 == 0 ? uniform(1, 6) : 0;
    Init(config);
    std::vector<std::vector<int32_t>> prefixes;
    for (int p = 0; p < 3; ++p) {
      std::vector<int32_t> prefix(uniform(0, 12));
      for (int32_t& token : prefix) token = uniform(0, kVocab - 1);
      prefixes.push_back(prefix);
    }
    int added = 0, aborted = 0, rejected = 0;
    const int total = 40;
    while (added < total || scheduler_->has_unfinished_requests()) {
      for (int k = uniform(0, 2); k > 0 && added < total; --k) {
        std::vector<int32_t> prompt = prefixes[uniform(0, 2)];
        for (int n = uniform(1, 8); n > 0; --n) prompt.push_back(uniform(0, kVocab - 1));
        StopConditions stop = MaxTokens(uniform(1, 16));
        if (uniform(0, 1)) stop.eos_token_ids = {0, 1};
        stop.ignore_eos = uniform(0, 3) == 0;
        if (uniform(0, 4) == 0) stop.stop_token_ids = {2};
        if (uniform(0, 4) == 0) stop.max_context_length = uniform(8, 20);
        const std::string id = absl::StrCat("s", added++);
        // Independently: refused iff the prompt leaves no room, or it cannot fit the pool.
        const int32_t context = stop.max_context_length > 0
                                    ? std::min(stop.max_context_length, config.max_model_len)
                                    : config.max_model_len;
        const int32_t prompt_size = static_cast<int32_t>(prompt.size());
        const int32_t kv_positions = std::min(context, prompt_size + stop.max_tokens) - 1;
        const bool fits =
            prompt_size < context && kv_positions <= config.num_pages * config.page_size;
        const absl::Status status = Add(id, prompt, stop);
        EXPECT_EQ(status.ok(), fits) << id << " " << status;
        if (!status.ok()) {
          prompts_.erase(id);
          ++rejected;
        }
      }
      if (uniform(0, 30) == 0) {
        std::vector<std::string> live = scheduler_->RunningIds();
        for (const std::string& id : scheduler_->WaitingIds()) live.push_back(id);
        if (!live.empty()) {
          ASSERT_TRUE(scheduler_->Abort(live[uniform(0, static_cast<int>(live.size()) - 1)]).ok());
          ++aborted;
        }
      }
      for (const ScheduledRequest& row : Step().scheduled) chunks += row.sample ? 0 : 1;
      ASSERT_LT(num_steps_, 20000) << "livelock";
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_EQ(static_cast<int>(reasons_.size()), total - rejected);
    ExpectOutputsMatchModelRunAlone();
    preemptions += scheduler_->num_preemptions();
    prefix_hits += scheduler_->prefix_hit_tokens();
    aborts += aborted;
  }
  steps = num_steps_;
  std::printf(
      "stress: %lld steps, %lld preemptions, %lld prefix-hit tokens, %lld aborts, "
      "%lld prefill chunks\n",
      static_cast<long long>(steps), static_cast<long long>(preemptions),
      static_cast<long long>(prefix_hits), static_cast<long long>(aborts),
      static_cast<long long>(chunks));
  EXPECT_GT(preemptions, 20);
  EXPECT_GT(prefix_hits, 100);
  EXPECT_GT(aborts, 5);
  EXPECT_GT(chunks, 50);
}

}  // namespace
}  // namespace kvserve::scheduler
