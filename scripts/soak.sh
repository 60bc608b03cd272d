#!/usr/bin/env bash
# The long cancel soak (issue 13): tests/server/soak.py against the built server, 10,000 requests
# by default (CI runs a 1000-request version as the ctest soak_short).
# Usage: scripts/soak.sh [REQUESTS] [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
requests="${1:-10000}"
build="${2:-$root/build}"
export PYTHONPATH="$build/proto/python:$root/tests/server"
export KVSERVE_BIN="$build/server/kvserve" KVSERVE_CACHE="$build/cache"
export KVSERVE_SHARED="${KVSERVE_SHARED:-$root/../shared}"
exec /usr/bin/python3 "$root/tests/server/soak.py" --requests "$requests" --concurrency 16
