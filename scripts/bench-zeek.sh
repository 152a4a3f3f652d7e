#!/usr/bin/env bash
# Zeek uplink benchmark: builds the release gateway, the release Zeek double and pkg/, then
# runs bench/zeek-bench.mjs (Zeek double -> uplink -> gateway -> Node client: msgs/s at paced
# rates and unpaced, latency p50/p99). RATES=100000,200000 and SECONDS=3 choose the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/ensure-tools.sh
scripts/build-pkg.sh
cargo build --release -p gateway -p e2e --bin broker-gateway --bin zeek-double --example uplink_sink
target=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
BROKER_GATEWAY_BIN="$target/release/broker-gateway" ZEEK_DOUBLE_BIN="$target/release/zeek-double" \
  UPLINK_SINK_BIN="$target/release/examples/uplink_sink" \
  exec node bench/zeek-bench.mjs
