#include "tests/scheduler/fake_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kvserve::scheduler::testing {

uint64_t FakeRunner::NextState(uint64_t state, int32_t token) {
  uint64_t x =
      state ^ (static_cast<uint64_t>(static_cast<uint32_t>(token)) * 0x9e3779b97f4a7c15ull);
  x ^= x >> 31;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 29;
  return x;
}

uint64_t FakeRunner::SequenceState(absl::Span<const int32_t> tokens) {
  uint64_t state = kInitialState;
  for (int32_t token : tokens) state = NextState(state, token);
  return state;
}

FakeRunner::FakeRunner(int32_t page_size, int32_t num_pages, int32_t vocab_size)
    : page_size_(page_size), vocab_size_(vocab_size), slots_(size_t(page_size) * num_pages) {}

void FakeRunner::Error(const std::string& request_id, const std::string& what) {
  errors_.push_back(absl::StrCat("request ", request_id, ": ", what));
}

FakeRunner::Slot& FakeRunner::SlotAt(absl::Span<const int32_t> page_table, int32_t position) {
  const int32_t page = page_table[position / page_size_];
  return slots_[size_t(page) * page_size_ + position % page_size_];
}

SampledTokens FakeRunner::Execute(const StepPlan& plan) {
  // Like the real runner: all new keys/values are written first, then "attention" reads.
  std::vector<uint64_t> last_states(plan.scheduled.size());
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const ScheduledRequest& row = plan.scheduled[i];
    const int32_t end = row.start_position + static_cast<int32_t>(row.token_ids.size());
    if (int64_t(row.page_table.size()) * page_size_ < end) {
      Error(row.request_id, "page table too short");
      continue;
    }
    uint64_t state = kInitialState;
    if (row.start_position > 0) {
      const Slot& previous = SlotAt(row.page_table, row.start_position - 1);
      if (!previous.written || previous.position != row.start_position - 1) {
        Error(row.request_id, absl::StrCat("cached position ", row.start_position - 1, " missing"));
      }
      state = previous.state;
    }
    for (size_t t = 0; t < row.token_ids.size(); ++t) {
      state = NextState(state, row.token_ids[t]);
      Slot& slot = SlotAt(row.page_table, row.start_position + static_cast<int32_t>(t));
      slot = Slot{true, row.start_position + static_cast<int32_t>(t), row.token_ids[t], state};
    }
    last_states[i] = state;
  }
  SampledTokens sampled(plan.scheduled.size());
  for (size_t i = 0; i < plan.scheduled.size(); ++i) {
    const ScheduledRequest& row = plan.scheduled[i];
    const int32_t end = row.start_position + static_cast<int32_t>(row.token_ids.size());
    if (int64_t(row.page_table.size()) * page_size_ < end) continue;
    // Read back every position this row attends to and check the chain is intact.
    uint64_t state = kInitialState;
    for (int32_t p = 0; p < end; ++p) {
      const Slot& slot = SlotAt(row.page_table, p);
      if (!slot.written || slot.position != p || NextState(state, slot.token) != slot.state) {
        Error(row.request_id, absl::StrCat("KV slot for position ", p, " is wrong"));
        break;
      }
      state = slot.state;
    }
    if (state != last_states[i])
      Error(row.request_id, "KV read back differs from what was written");
    if (row.sample) {
      sampled[i] = static_cast<int32_t>(last_states[i] % uint64_t(vocab_size_));
    }
  }
  return sampled;
}

std::vector<int32_t> GenerateAlone(absl::Span<const int32_t> prompt, const StopConditions& stop,
                                   int32_t max_model_len, int32_t vocab_size, std::string* reason) {
  const int32_t context = stop.max_context_length > 0
                              ? std::min(stop.max_context_length, max_model_len)
                              : max_model_len;
  std::vector<int32_t> sequence(prompt.begin(), prompt.end());
  std::vector<int32_t> output;
  std::string why;
  while (true) {
    const int32_t token =
        static_cast<int32_t>(FakeRunner::SequenceState(sequence) % uint64_t(vocab_size));
    sequence.push_back(token);
    output.push_back(token);
    const bool is_eos = !stop.ignore_eos && stop.eos_token_ids.contains(token);
    bool is_stop_token = false;
    for (int32_t stop_token : stop.stop_token_ids) is_stop_token |= stop_token == token;
    if (is_eos || is_stop_token) {
      why = "stop";
      break;
    }
    if (static_cast<int32_t>(output.size()) >= stop.max_tokens) {
      why = "length";
      break;
    }
    if (static_cast<int32_t>(sequence.size()) >= context) {
      why = "context_length";
      break;
    }
  }
  if (reason != nullptr) *reason = why;
  return output;
}

}  // namespace kvserve::scheduler::testing
