#!/usr/bin/env bash
# Load test: 10,000 concurrent WebSocket clients on one gateway process (see
# gateway/examples/load.rs). Extra arguments go to the program, e.g.
#   scripts/load-test.sh --clients 2000 --seconds 5
#   scripts/load-test.sh --url ws://127.0.0.1:9999 --pid 1234
#   scripts/load-test.sh -- --queue-size 1024        # flags for the gateway it starts
set -euo pipefail
cd "$(dirname "$0")/.."
# Each client is a socket here and one in the gateway (which inherits this limit).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -p gateway --bin broker-gateway --example load
exec "${CARGO_TARGET_DIR:-target}/release/examples/load" "$@"
