#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, -DKVSERVE_FUZZ=ON: everything under
# ASan + UBSan) in their own build directory and runs each fuzzer for SECONDS (default 60) on a
# copy of its corpus, tests/fuzz/corpus/<name>/ (seeds and crash regression inputs; what a run
# discovers stays in the copy). Fails if any fuzzer crashes, leaks, hangs (an input taking more
# than 10 s) or runs out of memory (2 GB); the input that did it is kept under
# BUILD_DIR/fuzz-artifacts/<name>/ and the summary says how to make it a regression input.
# Expects scripts/install-deps.sh to have run (clang, libfuzzer-14-dev).
# Usage: scripts/fuzz.sh [SECONDS] [BUILD_DIR]
#   KVSERVE_FUZZERS="json jinja"  only these fuzzers
#   KVSERVE_JOBS=N                build parallelism (default: nproc)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
build="${2:-$root/build-fuzz}"
jobs="${KVSERVE_JOBS:-$(nproc)}"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

start=$(date +%s)
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DKVSERVE_FUZZ=ON -DKVSERVE_BUILD_TESTS=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$jobs" --target kvserve_fuzzers
built=$(date +%s)
echo "fuzz: built in $((built - start)) s"

if [ -n "${KVSERVE_FUZZERS:-}" ]; then
  read -r -a names <<<"$KVSERVE_FUZZERS"
else
  names=()
  for f in "$root"/tests/fuzz/*_fuzzer.cc; do
    n="$(basename "$f" .cc)"
    names+=("${n%_fuzzer}")
  done
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
summary=()
for name in "${names[@]}"; do
  corpus="$build/fuzz-corpus/$name"
  artifacts="$build/fuzz-artifacts/$name"
  rm -rf "$corpus"
  mkdir -p "$corpus" "$artifacts"
  cp "$root/tests/fuzz/corpus/$name"/* "$corpus"/
  log="$build/fuzz-logs/$name.log"
  mkdir -p "$(dirname "$log")"
  echo "fuzz: $name for $seconds s"
  status=0
  "$build/fuzz/${name}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  if [ "$status" != 0 ]; then
    failed+=("$name")
    summary+=("$name: FAILED (exit $status) after ${runs:-?} executions; log $log")
    tail -40 "$log" >&2
  else
    summary+=("$name: ${runs:-?} executions, corpus $(ls "$corpus" | wc -l) inputs")
  fi
done

echo "fuzz: ${seconds} s per fuzzer, built in $((built - start)) s, ran in $(($(date +%s) - built)) s"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}. The inputs are in $build/fuzz-artifacts/<name>/; fix the bug and" >&2
  echo "  add each as a regression input: cp ARTIFACT tests/fuzz/corpus/<name>/regress-<what>" >&2
  exit 1
fi
