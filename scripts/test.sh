#!/usr/bin/env bash
# Builds kvserve and runs the whole test suite (C++ unit tests, NumPy and llama.cpp reference
# checks). Expects scripts/install-deps.sh to have run. Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
jobs="${KVSERVE_JOBS:-$(nproc)}"
# llama.cpp oracle (npm node-llama-cpp) lives outside the tree; the tests find it here.
export KVSERVE_ORACLE_DIR="${KVSERVE_ORACLE_DIR:-$HOME/.cache/kvserve/oracle}"
bash "$root/scripts/install-oracle.sh" "$KVSERVE_ORACLE_DIR" >/dev/null
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 900 -LE soak
