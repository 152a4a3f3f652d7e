#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 20), one after the other,
# and fails if any of them finds a crash (the input is kept in fuzz/artifacts/<target>/).
# Installs cargo-fuzz (the version pinned below) when it is missing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   run (all targets unless some are named)
#   scripts/fuzz.sh --install               only install cargo-fuzz
#
# Inputs that found new coverage go to fuzz/corpus/<target>/ (not committed) and are reused by
# the next run; fuzz/seeds/<target>/ holds a few committed starting inputs.
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them, and the address sanitizer works that way too. The default build is optimised, with
# debug assertions and the address sanitizer (a cold build takes about 5 minutes on 2 cores).
# FUZZ_DEV=1 builds the dev profile without the sanitizer instead (about a minute; slower
# runs, overflow checks still on), as the short pass of scripts/test.sh does.
# FUZZ_SANITIZER=none|address|... overrides the sanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

CARGO_FUZZ_VERSION=0.13.2

have=$(cargo fuzz --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$CARGO_FUZZ_VERSION" ]; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION (found: ${have:-none})"
  cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked
fi
[ "${1:-}" = "--install" ] && exit 0

secs="${1:-20}"
shift || true
export RUSTC_BOOTSTRAP=1
# -a: debug assertions (integer overflow checks) in the fuzzed code.
if [ "${FUZZ_DEV:-0}" = 1 ]; then
  build=(-D -s "${FUZZ_SANITIZER:-none}")
else
  build=(-a -s "${FUZZ_SANITIZER:-address}")
fi

cargo fuzz build "${build[@]}"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

failed=()
for t in "${targets[@]}"; do
  echo "==> fuzz $t for ${secs}s"
  mkdir -p "fuzz/corpus/$t"
  corpora=("fuzz/corpus/$t")
  [ -d "fuzz/seeds/$t" ] && corpora+=("fuzz/seeds/$t")
  # One process, no workers: libFuzzer's own time limit ends the run.
  if ! cargo fuzz run "${build[@]}" "$t" "${corpora[@]}" -- \
    -max_total_time="$secs" -timeout=20 -print_final_stats=1 -close_fd_mask=1; then
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crashes in ${#targets[@]} targets (${secs}s each)"
