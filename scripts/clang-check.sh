#!/usr/bin/env bash
# The strict build: every C++ target with clang, -Wall -Wextra -Werror and the thread-safety
# analysis (-Wthread-safety checks every ABSL_GUARDED_BY / ABSL_LOCKS_EXCLUDED), then the C++
# unit tests (ctest label `unit`) of that build. CI runs it after scripts/test.sh; the Python
# suites are not run again. Expects scripts/install-deps.sh to have run.
# Usage: scripts/clang-check.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-clang}"
jobs="${KVSERVE_JOBS:-$(nproc)}"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DKVSERVE_WARNINGS_AS_ERRORS=ON "${launcher[@]}"
cmake --build "$build" -j "$jobs"
# This build compiles the engine for AVX-512 + AVX-VNNI hosts (see CMakeLists.txt): its tests run only there.
has() { grep -qw "$1" /proc/cpuinfo; }
if has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512_vnni && has avx512_bf16 &&
    has avx_vnni && has f16c; then
  cd "$build"
  ctest --output-on-failure -j "$jobs" -L unit
else
  echo "clang-check: built with the warnings as errors; unit tests skipped (no AVX-512 here)"
fi
