#!/usr/bin/env bash
# Installs llama.cpp (npm package node-llama-cpp, prebuilt CPU binaries) into a scratch folder
# outside the source tree, for the reference tests and benchmarks. Idempotent.
# Usage: scripts/install-oracle.sh [DIR]   (default: $KVSERVE_ORACLE_DIR or ~/.cache/kvserve/oracle)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-${KVSERVE_ORACLE_DIR:-$HOME/.cache/kvserve/oracle}}"
shared="${KVSERVE_SHARED:-$here/../shared}"
mkdir -p "$dir"
if [ ! -d "$dir/node_modules/node-llama-cpp" ] || [ ! -d "$dir/node_modules/@node-llama-cpp/linux-x64" ]; then
  echo "install-oracle: npm install node-llama-cpp into $dir"
  (cd "$dir" && { [ -f package.json ] || echo '{"name":"kvserve-oracle","private":true,"type":"module"}' > package.json; } &&
   npm install --no-audit --no-fund --omit=optional --loglevel=error \
     node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1)
fi
cp "$shared/anchors/llamacpp_oracle.mjs" "$dir/llamacpp_oracle.mjs"
echo "$dir"
