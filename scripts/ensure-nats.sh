#!/usr/bin/env bash
# Installs Debian's nats-server (for bench/nats-bench.mjs, the NATS comparison) when it is
# missing; quick when it is there. The benchmark starts its own server on a free port; the
# package's system service is not used.
set -euo pipefail
if ! command -v nats-server >/dev/null; then
  echo "==> installing nats-server"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
  fi
fi
