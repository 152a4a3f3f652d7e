#!/usr/bin/env bash
# Namespaces on Redis benchmark (RB-10): starts a redis-server on a free port, measures Redis'
# own RPUSH and LPOP with redis-benchmark (10 clients), then runs the namespace benchmark with
# two gateways sharing that Redis (put+get pairs/s from 1 and 10 clients spread over both
# gateways, and the put -> waiting-get handoff from one gateway to the other), in one run.
# PAIRS=200000 sets the pairs per client of the 1-client run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v redis-server >/dev/null || scripts/ensure-tools.sh --no-browser
cargo build --release -q -p gateway --example ns_bench
target=${CARGO_TARGET_DIR:-$PWD/target}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize no >"$dir/log" 2>&1 &
redis=$!
trap 'kill $redis 2>/dev/null; wait $redis 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "==> $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on port $port"
for pipe in 1 16; do
  echo "==> redis-benchmark: RPUSH and LPOP, 10 clients, pipeline $pipe"
  redis-benchmark -p "$port" -c 10 -n 200000 -P "$pipe" -t rpush,lpop -q 2>/dev/null \
    | tr '\r' '\n' | grep 'requests per second'
done
echo "==> namespaces on this Redis through two gateways"
"$target/release/examples/ns_bench" "${PAIRS:-200000}" --redis "redis://127.0.0.1:$port"
