#!/usr/bin/env bash
# Builds kvserve (if needed) and starts the server. With no --model it serves the default model
# (models/kvserve-demo.gguf, trained on War and Peace), so this works offline on a fresh machine.
# Extra arguments go to `kvserve serve`, e.g.
#   scripts/run.sh --model /models/tinyllama-1.1b-chat.Q8_0.gguf --grpc-port 50051
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${KVSERVE_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target kvserve
exec "$build/server/kvserve" serve "$@"
