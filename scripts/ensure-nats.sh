#!/usr/bin/env bash
# Installs Debian's nats-server (for bench/nats-bench.mjs, the NATS comparison) when it is
# missing; quick when it is there. The benchmark starts its own server on a free port; the
# package's system service is not used.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nats-server >/dev/null; then
  echo "==> installing nats-server"
  scripts/apt-install.sh nats-server
fi
