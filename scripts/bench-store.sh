#!/usr/bin/env bash
# Store benchmark: acknowledged puts/s to an SQLite master from 1 and 10 clients, master ->
# Rust clone propagation p50/p99 (SQLite master, memory master beside it) and the time to
# attach a Rust clone to 1,000,000 keys (gateway/examples/store_bench.rs), then the same
# propagation to a Node clone and the time to attach a Node clone to the same 1M-key SQLite
# store (bench/store-bench.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/ensure-tools.sh --no-browser
scripts/build-pkg.sh
cargo build --release -p gateway --bins --example store_bench
target=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
dir=$(mktemp -d "${TMPDIR:-/tmp}/broker-store-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$target/release/examples/store_bench" "$dir"
BROKER_GATEWAY_BIN="$target/release/broker-gateway" node bench/store-bench.mjs "$dir"
