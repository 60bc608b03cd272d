#!/usr/bin/env bash
# Installs the npm clients the HTTP tests drive kvserve with — the official `openai` client and
# `playwright-core` (which drives Debian's /usr/bin/chromium) — into a scratch folder outside
# the source tree. Idempotent.
# Usage: scripts/install-http-clients.sh [DIR]   (default: $KVSERVE_HTTP_CLIENTS_DIR or
#        ~/.cache/kvserve/http-clients). Prints DIR.
set -euo pipefail
dir="${1:-${KVSERVE_HTTP_CLIENTS_DIR:-$HOME/.cache/kvserve/http-clients}}"
mkdir -p "$dir"
# ctest runs the HTTP test suites in parallel and each calls this script: one npm install at a
# time (concurrent installs into one folder corrupt it), the others wait and then find it done.
exec 9>"$dir/.install.lock"
flock 9
if [ ! -f "$dir/node_modules/openai/package.json" ] || \
   [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
  echo "install-http-clients: npm install openai playwright-core into $dir" >&2
  (cd "$dir" && { [ -f package.json ] || echo '{"name":"kvserve-http-clients","private":true,"type":"module"}' > package.json; } &&
   npm install --no-audit --no-fund --loglevel=error openai@7.59.0 playwright-core@1.65.1 >&2)
fi
echo "$dir"
