#!/usr/bin/env bash
# The main job: sets up what is missing, builds the npm package the dashboard uses, and runs
# the gateway (default http://127.0.0.1:9999). Extra arguments go to broker-gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/ensure-tools.sh --no-browser
scripts/build-pkg.sh
cargo build --release -p gateway
# A master store to look at in the dashboard, kept in SQLite under ./data (set BROKER_STORES
# to change it; an empty value starts none).
export BROKER_STORES="${BROKER_STORES-demo}"
exec "$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')/release/broker-gateway" "$@"
