#!/usr/bin/env bash
# Makes the Python package usable: a virtual environment (default target/pyvenv, or
# $BROKER_PYVENV) with the pinned build and test tools of python/requirements-dev.txt, and the
# package `broker-web-python` (modules `broker`, `dbr_module`, `_dbr_interface`) built by
# maturin from python/ and installed into it. Quick when nothing changed. Prints the
# environment's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
venv="${BROKER_PYVENV:-${CARGO_TARGET_DIR:-$PWD/target}/pyvenv}"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Python 3.11+ is required (python3: $(python3 --version 2>&1 || echo none))" >&2
  exit 1
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "==> installing python3-venv"
  pkg="python3-venv"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating the Python environment $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements"
if ! cmp -s python/requirements-dev.txt "$stamp"; then
  echo "==> pip install -r python/requirements-dev.txt"
  "$venv/bin/pip" install -q --disable-pip-version-check -r python/requirements-dev.txt
  cp python/requirements-dev.txt "$stamp"
fi
echo "==> maturin develop (python/)" >&2
(cd python && VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop -q >&2)
echo "$venv"
