// FakeRunner: a deterministic stand-in for the model, for scheduler tests without tensors.
//
// The "model" is a rolling hash: state(p) = Mix(state(p-1), token(p)), and the next token after a
// sequence is state(last) % vocab_size. Like real keys/values, the state stored at a position
// depends on every earlier token, and the runner keeps it in a fake paged KV store addressed by
// the plan's page tables. A step writes the state of each scheduled token (continuing from the
// state read back from the cache at start_position - 1) and, for rows marked `sample`, returns
// the next token. It also checks every cached position it relies on: a slot holding another
// position, an unwritten slot or a broken chain is recorded in errors(). So a wrong page table,
// a page reused while still in use, or a bad prefix-cache hit shows up as an error or as output
// that differs from GenerateAlone().
//
// Test-only. Thread-safety: none.
#ifndef KVSERVE_TESTS_SCHEDULER_FAKE_RUNNER_H_
#define KVSERVE_TESTS_SCHEDULER_FAKE_RUNNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "scheduler/request.h"
#include "scheduler/step_plan.h"

namespace kvserve::scheduler::testing {

class FakeRunner {
 public:
  FakeRunner(int32_t page_size, int32_t num_pages, int32_t vocab_size);

  // Runs one step; returns the sampled token of every row with sample == true.
  SampledTokens Execute(const StepPlan& plan);

  const std::vector<std::string>& errors() const { return errors_; }
  int32_t vocab_size() const { return vocab_size_; }

  // The model's state after `tokens` (a naive loop over the whole sequence).
  static uint64_t SequenceState(absl::Span<const int32_t> tokens);
  static uint64_t NextState(uint64_t state, int32_t token);
  static constexpr uint64_t kInitialState = 0x1234567887654321ull;

 private:
  struct Slot {
    bool written = false;
    int32_t position = -1;
    int32_t token = -1;
    uint64_t state = 0;
  };
  Slot& SlotAt(absl::Span<const int32_t> page_table, int32_t position);
  void Error(const std::string& request_id, const std::string& what);

  int32_t page_size_;
  int32_t vocab_size_;
  std::vector<Slot> slots_;  // [num_pages * page_size]
  std::vector<std::string> errors_;
};

// What the model generates for `prompt` when run alone, stopping under `stop` exactly as the
// scheduler should (stop/EOS token, then max_tokens, then context length), written as a plain
// loop independent of the scheduler's code. Returns the output tokens; *reason gets the name
// of the finish reason ("stop", "length", "context_length").
std::vector<int32_t> GenerateAlone(absl::Span<const int32_t> prompt, const StopConditions& stop,
                                   int32_t max_model_len, int32_t vocab_size,
                                   std::string* reason = nullptr);

}  // namespace kvserve::scheduler::testing

#endif  // KVSERVE_TESTS_SCHEDULER_FAKE_RUNNER_H_
