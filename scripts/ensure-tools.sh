#!/usr/bin/env bash
# Installs what the build needs when it is missing, and is quick when everything is there:
# the wasm32 target (rustup), the wasm-bindgen CLI of exactly the version pinned in
# Cargo.toml, cargo-fuzz of the version pinned in scripts/fuzz.sh, Debian's Chromium, Debian's
# redis-server and redis-cli (the Redis tests start real servers and a real cluster) and the
# npm packages of the tests. Node.js 20+ must be on the machine. `--no-browser` skips Chromium
# (the run command does not need it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# Debian's redis-server (it brings redis-cli) for the tests of the Redis namespace backend,
# which start their own servers and clusters on free ports of 127.0.0.1.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "==> installing redis-server"
  scripts/apt-install.sh redis-server
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "==> installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
[ -n "$want" ] || { echo "wasm-bindgen is not pinned with = in Cargo.toml" >&2; exit 1; }
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "==> installing wasm-bindgen-cli $want (found: ${have:-none})"
  # --locked uses the CLI's own lock file; if a crate it pins is not on the registry, fall
  # back to a fresh resolution of the same CLI version.
  cargo install wasm-bindgen-cli --version "=$want" --locked \
    || cargo install wasm-bindgen-cli --version "=$want"
fi

# cargo-fuzz for the fuzzing pass (scripts/fuzz.sh pins the version and installs it).
scripts/fuzz.sh --install

if ! command -v node >/dev/null; then
  echo "Node.js 20+ is required (node not found)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "Node.js 20+ is required (found $(node --version))" >&2
  exit 1
fi

# Debian's Chromium for the browser tests (playwright-core drives it; no browser download).
if [ "${1:-}" != "--no-browser" ] && ! command -v chromium >/dev/null; then
  echo "==> installing chromium"
  scripts/apt-install.sh chromium
fi

# npm packages of the tests (package-lock.json pins them); again only when something changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
fi
