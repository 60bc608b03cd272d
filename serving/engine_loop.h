// EngineLoop: the one engine thread of DESIGN.md, and its thread-safe front.
//
//   forever: wait for work (new requests, aborts, or requests still running);
//            plan = scheduler.Schedule(); results = executor.Execute(plan);
//            events = scheduler.Update(plan, results); push events to the requests' channels
//
// Other threads (gRPC, HTTP, benchmarks) call Submit() and Abort(); those only enqueue work under
// a mutex, and the engine thread applies it between steps. Nothing outside the engine thread
// touches the Scheduler, the KV pages or the model.
//
// Ownership: owns the Scheduler and the StepExecutor. Thread-safety: Submit, Abort, Load and
// Shutdown may be called from any thread.
#ifndef KVSERVE_SERVING_ENGINE_LOOP_H_
#define KVSERVE_SERVING_ENGINE_LOOP_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/sampling.h"
#include "engine/step_profile.h"
#include "scheduler/scheduler.h"
#include "serving/engine_observer.h"
#include "serving/output_channel.h"
#include "serving/stats_recorder.h"
#include "serving/step_executor.h"

namespace kvserve::serving {

struct EngineLoopConfig {
  scheduler::SchedulerConfig
      scheduler;  // page_size / num_pages / max_model_len come from the executor
  // Requests waiting for admission (handed over or queued in the scheduler) before Submit
  // answers ResourceExhausted.
  int32_t max_queued_requests = 1024;
  // Told about every step and every finished request, on the engine thread (metrics). Not owned;
  // must outlive the loop. Optional.
  EngineObserver* observer = nullptr;
};

struct GenerationRequest {
  std::string request_id;  // empty: the loop assigns "req-N"
  std::vector<int32_t> prompt;
  scheduler::StopConditions stop;
  engine::SamplingParams sampling;
};

// A point-in-time view for load balancers, metrics and tests.
struct EngineLoad {
  int32_t running = 0;
  int32_t waiting = 0;  // in the scheduler's queue or handed over but not yet applied
  int32_t free_pages = 0;
  int32_t total_pages = 0;
  double kv_usage = 0;
  int64_t steps = 0;
  int64_t preemptions = 0;
  int64_t prefix_query_tokens = 0;
  int64_t prefix_hit_tokens = 0;
};

class EngineLoop {
 public:
  static absl::StatusOr<std::unique_ptr<EngineLoop>> Create(std::unique_ptr<StepExecutor> executor,
                                                            EngineLoopConfig config);
  // Stops the thread; unfinished requests are aborted (their channels get a final output).
  ~EngineLoop();

  // Validates and queues a request. Errors: InvalidArgument (empty prompt, token id outside the
  // vocabulary, bad sampling parameters, max_tokens < 1 — each naming the field), OutOfRange
  // (prompt + max_tokens does not fit the context or the KV pool), AlreadyExists (id in use),
  // ResourceExhausted (waiting queue full), Unavailable (shutting down).
  absl::StatusOr<std::shared_ptr<OutputChannel>> Submit(GenerationRequest request);

  // Aborts a request wherever it is; applied before the next step. Unknown ids are ignored.
  // `reason` is an abort reason (scheduler::IsAbort): kCancelled, or kStopString when the server
  // matched a stop string; the request's final output and the observer are told it.
  void Abort(const std::string& request_id,
             scheduler::FinishReason reason = scheduler::FinishReason::kCancelled);

  EngineLoad Load() const;
  const ExecutorShape& shape() const { return shape_; }
  const scheduler::SchedulerConfig& scheduler_config() const { return config_.scheduler; }

  // Refuse new requests (Unavailable) from now on; running ones go on.
  void StopAccepting();
  // Waits until no request is queued or running and Load() says so (pages of finished requests
  // free), or the deadline passes; true if idle.
  bool WaitIdle(absl::Time deadline);
  // Aborts everything and joins the thread. Idempotent.
  void Shutdown();

 private:
  struct Pending {
    GenerationRequest request;
    std::shared_ptr<OutputChannel> channel;
    absl::Time arrival;
  };
  using AbortList = std::vector<std::pair<std::string, scheduler::FinishReason>>;
  // What the front handed over since the engine thread last looked.
  struct Work {
    std::vector<Pending> pending;
    AbortList aborts;
    bool stop = false;
  };
  // A request the engine thread serves: where its outputs go, and its figures.
  struct Live {
    std::shared_ptr<OutputChannel> channel;
    int32_t num_logprobs = 0;
    RequestTimeline timeline;
  };

  EngineLoop(std::unique_ptr<StepExecutor> executor,
             std::unique_ptr<scheduler::Scheduler> scheduler, EngineLoopConfig config);

  // The engine thread: wait for work, step, publish; until Shutdown.
  void Run();
  // Blocks until there is a request to run, something handed over, or stop.
  Work WaitForWork() ABSL_LOCKS_EXCLUDED(mu_);
  // Hands new requests to the scheduler and applies aborts.
  void ApplyWork(Work& work);
  // One step: schedule, execute, update the scheduler, publish every output.
  void Step(bool handed_over, engine::PhaseTimer& timer);
  // Runs the plan; on failure every scheduled request ends with the error and the result is
  // empty.
  StepResults Execute(const scheduler::StepPlan& plan, engine::PhaseTimer& timer);
  // Applies the step to the scheduler and publishes its events to the requests' channels.
  void Publish(const scheduler::StepPlan& plan, StepResults& results);
  void PublishEvent(const scheduler::RequestEvent& event, StepResults& results, absl::Time now);
  // Ends every scheduled request with `error` (the step could not be run or applied).
  void FailStep(const scheduler::StepPlan& plan, const absl::Status& error);
  // Ends every request, queued, handed over or running: the loop is shutting down.
  void AbortAll(std::vector<Pending>& pending);
  // Publishes the final output. `error` is non-OK only with reason kError.
  void Finish(const std::string& id, scheduler::FinishReason reason,
              absl::Status error = absl::OkStatus()) ABSL_LOCKS_EXCLUDED(mu_);
  void PublishLoad() ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<StepExecutor> executor_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;  // engine thread only
  EngineLoopConfig config_;
  ExecutorShape shape_;

  mutable absl::Mutex mu_;
  std::vector<Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, scheduler::FinishReason>> aborts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> ids_in_use_ ABSL_GUARDED_BY(mu_);
  int32_t num_unfinished_ ABSL_GUARDED_BY(mu_) = 0;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  EngineLoad load_ ABSL_GUARDED_BY(mu_);
  // Requests the engine thread has taken from pending_ but not yet published in load_.waiting;
  // counted so that Submit's queue limit has no window in which they are invisible.
  int32_t in_transit_ ABSL_GUARDED_BY(mu_) = 0;
  // A request finished after the last PublishLoad (WaitIdle waits for the publish).
  bool finished_since_publish_ ABSL_GUARDED_BY(mu_) = false;

  absl::flat_hash_map<std::string, Live> live_;  // engine thread only
  int64_t steps_ = 0;                            // engine thread only
  StatsRecorder stats_;                          // engine thread only
  std::thread thread_;
};

}  // namespace kvserve::serving

#endif  // KVSERVE_SERVING_ENGINE_LOOP_H_
