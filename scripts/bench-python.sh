#!/usr/bin/env bash
# Python pub/sub benchmark: a Python publisher -> broker-gateway -> a Python subscriber with
# this package (release builds), then the same program with Broker's own Python bindings
# (Debian's python3-broker, installed when missing; publisher peered to subscriber
# directly), in one run. Prints msgs/s and latency percentiles per offered rate.
# MESSAGES=200000, RATES=50000,100000,200000,max and BROKER_RATES=10000,20000,max choose the
# runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-$PWD/target}
venv="$target/pyvenv-release"
messages=${MESSAGES:-200000}

cargo build --release -q -p gateway --bin broker-gateway
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s python/requirements-dev.txt "$venv/.requirements"; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r python/requirements-dev.txt
  cp python/requirements-dev.txt "$venv/.requirements"
fi
(cd python && VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --release -q)

log=$(mktemp)
"$target/release/broker-gateway" --listen 127.0.0.1:0 --log-level warn >"$log" &
gw=$!
trap 'kill $gw 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q http:// "$log" && break; sleep 0.1; done
port=$(head -1 "$log" | sed 's/.*://')
[ -n "$port" ] || { echo "the gateway printed no address" >&2; exit 1; }

echo "==> this package: Python -> broker-gateway -> Python ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
"$venv/bin/python" bench/python-bench.py --impl ours --port "$port" --messages "$messages" \
  --rates "${RATES:-50000,100000,200000,max}" | grep -v '^\['
echo "dropped at the gateway: $(curl -s "http://127.0.0.1:$port/metrics" | awk '/^broker_dropped_total/{print $2}')"

# Broker's bindings are built for the system's own interpreter.
if ! /usr/bin/python3 -c 'import broker' 2>/dev/null; then
  echo "==> installing python3-broker"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-broker
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-broker
  fi
fi
echo "==> Broker's bindings ($(/usr/bin/python3 -c 'import broker; print(broker.Version.string() if hasattr(broker.Version, "string") else "python3-broker")' 2>/dev/null || echo python3-broker)): Python -> Python, peered directly"
/usr/bin/python3 bench/python-bench.py --impl broker --messages "$messages" \
  --rates "${BROKER_RATES:-10000,20000,max}" | grep -v '^\['
