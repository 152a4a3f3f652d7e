#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (native and wasm32), the Rust unit, property,
# vector, malformed-input and fuzz tests, the end-to-end tests against the gateway binary,
# the Node tests of pkg/, the Python package's tests (pytest, in a virtual environment) and
# a short pass of the cargo-fuzz targets. Installs what is missing
# first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/ensure-tools.sh

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> import circles"
for crate in broker-wasm broker-client gateway; do
  python3 scripts/module-cycles.py "$crate/src"
done

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The client without its default feature `tls` (ws:// only).
cargo clippy -p broker-client --no-default-features --all-targets -- -D warnings
cargo clippy -p broker-wasm --lib --target wasm32-unknown-unknown -- -D warnings
# The browser build of pkg/ (without JSON frames).
cargo clippy -p broker-wasm --lib --target wasm32-unknown-unknown --no-default-features -- -D warnings

echo "==> building pkg/, the gateway and the Zeek double"
scripts/build-pkg.sh
cargo build -p gateway
cargo build -p e2e --bin zeek-double

echo "==> cargo test"
# Each fuzz target runs this long (seconds); raise it for a longer pass.
export FUZZ_SECONDS="${FUZZ_SECONDS:-3}"
cargo test --workspace

echo "==> node --test"
# A test file that never exits (a timer left running) fails the run instead of stalling it.
timeout 1800 node --test tests/node/

echo "==> Python package and pytest"
# A virtual environment with the pinned tools; maturin builds python/ into it.
venv=$(scripts/ensure-python.sh | tail -1)
"$venv/bin/pytest" -q python

echo "==> cargo fuzz (short pass)"
# Every target of fuzz/ for FUZZ_PASS_SECONDS each, dev build without the sanitizer (builds
# in about a minute; about 2.5 minutes in all). scripts/fuzz.sh runs longer, optimised ones.
FUZZ_DEV=1 scripts/fuzz.sh "${FUZZ_PASS_SECONDS:-15}"
