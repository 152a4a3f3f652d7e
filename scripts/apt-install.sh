#!/usr/bin/env bash
# Installs Debian packages with apt-get (through sudo when not root), for the ensure scripts:
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
