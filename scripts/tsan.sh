#!/usr/bin/env bash
# The data-race run (issue 13): GCC's ThreadSanitizer (-DKVSERVE_TSAN=ON) over the C++ unit tests
# whose threads meet in kvserve's own code: the engine loop and its OutputChannel hand-off
# (tests/serving), the generation stream consumed from other threads and the worker pool, the
# HTTP server's io threads and streams written from other threads, the metrics' atomic
# histograms (tests/server), the JSON reader's stack guard on small-stack threads (tests/base). Any race, lock-order inversion or misuse of a lock
# that TSan reports fails the run (halt_on_error=1: the test process exits non-zero).
#
# Only those test targets are built (not the whole tree: the engine's kernels, the frontend and
# the HTTP server, ~1/3 of the build), so the stage fits CI's time budget; see docs/TESTING.md,
# "ThreadSanitizer", for what is left out and why. In short: Debian's Abseil, gRPC and protobuf
# are not instrumented, so nothing gRPC runs here; absl::Mutex is made visible to TSan by
# tests/tsan/absl_sync_annotations.cc (linked into every test binary of this build); libgomp is
# not instrumented either and its thread pool would give false reports, so the tests run with
# OMP_NUM_THREADS=1 (the engine's OpenMP regions then run on the calling thread only; the
# threads under test are kvserve's own).
# GCC, not clang: its `#pragma GCC target` kernels run on every machine class (AVX2-only too).
# CI runs it after scripts/sanitize.sh. Expects scripts/install-deps.sh to have run.
# Usage: scripts/tsan.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-tsan}"
jobs="${KVSERVE_JOBS:-$(nproc)}"
# The test binaries, and the ctest names (GoogleTest suites) of their tests.
targets=(engine_loop_test engine_loop_queue_test engine_observer_test
  generation_stream_test worker_pool_test metrics_test http_server_test json_test)
suites='EngineLoopTest|EngineLoopQueueTest|EngineObserverTest|GenerationStreamTest|WorkerPoolTest'
suites+='|AtomicHistogramTest|MetricsTest|HttpServerTest|HttpServerStartTest|JsonTest|StackGuardTest'
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVSERVE_TSAN=ON \
  "${launcher[@]}"
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
export OMP_NUM_THREADS=1
cd "$build"
# Every test of those suites, and no others: a suite that matched nothing would be a silent gap.
ctest -N -L unit -R "^($suites)\." | grep -q "Total Tests: [1-9]"
ctest --output-on-failure -j "$jobs" --timeout 900 -L unit -R "^($suites)\."
echo "tsan: ${targets[*]} passed under ThreadSanitizer"
