#!/usr/bin/env bash
# NATS comparison: bench/nats-bench.mjs (Node nats.ws client -> nats-server over WebSocket ->
# Node client: paced 1 -> 1 msgs/s and round-trip p50/p99, as bench/js-bench.mjs measures our
# JS client). Installs nats-server and the npm packages when missing. N=1000000 sets the
# messages.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-nats.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
exec node bench/nats-bench.mjs
