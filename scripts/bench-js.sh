#!/usr/bin/env bash
# JS client benchmark: builds the release gateway and pkg/, then runs bench/js-bench.mjs
# (Node -> gateway -> Node msgs/s, round-trip p50/p99, Chromium receive rate).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/ensure-tools.sh
scripts/build-pkg.sh
cargo build --release -p gateway --bin broker-gateway --example bench_publisher
target=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
BROKER_GATEWAY_BIN="$target/release/broker-gateway" BENCH_PUBLISHER_BIN="$target/release/examples/bench_publisher" exec node bench/js-bench.mjs
