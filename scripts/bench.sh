#!/usr/bin/env bash
# Runs every benchmark, one after the other, and writes their figures as one table:
# target/bench/latest.md (markdown) and target/bench/latest.json, plus timestamped copies
# (latest-<UTC stamp>.*), with the date, the git revision, the core count (nproc) and the load
# average before and after. Each program appends its figures as JSON lines to $BENCH_JSON
# (bench/rows.mjs, gateway/examples/common/rows.rs); bench/report.mjs builds the table.
#
#   scripts/bench.sh                          everything
#   scripts/bench.sh --only gateway,nats      a subset of: gateway js nats store ns load
#   scripts/bench.sh --rounds N [...]         every benchmark N times; each figure is the median
#   scripts/bench.sh --compare REV [--only ...]
#       builds REV in a git worktree (target/bench/worktree, its own CARGO_TARGET_DIR
#       target/bench/target-rev), runs the same benchmark programs (today's: gateway/examples,
#       bench/*.mjs, scripts/bench*.sh are copied over REV's) on REV and on this work tree,
#       back to back per benchmark, and writes target/bench/compare.md and .json (before,
#       after, change %). A program that does not build or run on REV leaves its rows
#       missing there. latest.* get this work tree's figures as usual. With --rounds N the
#       two sides alternate which runs first (round by round and benchmark by benchmark), as
#       the second of two back-to-back runs tends to meet a busier machine.
#
# The benchmarks (what each row measures is in README.md, "Tests and benchmarks"):
#   gateway  cargo run --release -p gateway --example bench (with the bare relay)
#   js       bench/js-bench.mjs: Node -> gateway -> Node and -> Chromium (as scripts/bench-js.sh)
#   nats     bench/nats-bench.mjs: nats.ws -> nats-server over WebSocket -> nats.ws
#   store    store_bench and bench/store-bench.mjs (as scripts/bench-store.sh)
#   ns       ns_bench: namespaces in memory and in SQLite
#   load     the load example with 10,000 clients (as scripts/load-test.sh)
#
# Smaller runs for development (defaults in brackets): BENCH_MESSAGES [2000000] (gateway),
# JS_MESSAGES [1000000] (js and nats), STORE_ROUNDS [5000] (Node clone propagation),
# NS_PAIRS [200000], LOAD_CLIENTS [10000], LOAD_SECONDS [10].
# Installs what is missing first (scripts/ensure-tools.sh, scripts/ensure-nats.sh); quick when
# everything is there. Exits non-zero if a benchmark of this work tree failed (the table is
# written all the same, without its rows).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
root=$PWD
all_groups=(gateway js nats store ns load)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

groups=("${all_groups[@]}")
compare=""
rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --only)
      IFS=, read -r -a groups <<<"${2:?--only needs a list, e.g. gateway,js}"
      shift 2
      ;;
    --compare)
      compare=${2:?--compare needs a revision}
      shift 2
      ;;
    --rounds)
      rounds=${2:?--rounds needs a count}
      [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a positive count" >&2; exit 2; }
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "unknown argument $1 (see --help)" >&2
      exit 2
      ;;
  esac
done
for g in "${groups[@]}"; do
  [[ " ${all_groups[*]} " == *" $g "* ]] || {
    echo "unknown benchmark '$g' (one of: ${all_groups[*]})" >&2
    exit 2
  }
done
has() { [[ " ${groups[*]} " == *" $1 "* ]]; }

out="$root/target/bench"
mkdir -p "$out/logs"
run_id=$(date -u +%Y%m%dT%H%M%SZ)

# --- tools --------------------------------------------------------------------------------
if has js; then scripts/ensure-tools.sh; else scripts/ensure-tools.sh --no-browser; fi
if has nats; then scripts/ensure-nats.sh; fi

# --- builds (all before the first benchmark, so none runs during a measurement) ------------
# Programs of one tree that failed to build: "<tree>:<program>".
failed_builds=()

# build_tree DIR TARGET_DIR TREE: the release gateway, the examples and pkg/ for the groups.
build_tree() {
  local dir=$1 target=$2 tree=$3
  echo "==> building ($tree: $dir)"
  if ! (cd "$dir" && CARGO_TARGET_DIR="$target" cargo build --release -q -p gateway --bin broker-gateway); then
    failed_builds+=("$tree:broker-gateway")
  fi
  local examples=()
  has gateway && examples+=(bench)
  has store && examples+=(store_bench)
  has ns && examples+=(ns_bench)
  has load && examples+=(load)
  has js && examples+=(bench_publisher)
  for e in "${examples[@]}"; do
    (cd "$dir" && CARGO_TARGET_DIR="$target" cargo build --release -q -p gateway --example "$e") \
      || failed_builds+=("$tree:$e")
  done
  if has js || has store; then
    # pkg/ is rebuilt only when the client core, its JS or the lock file changed since.
    local wasm="$dir/pkg/dist/node/broker_wasm_bg.wasm"
    if [ ! -f "$wasm" ] || [ -n "$(cd "$dir" && find broker-wasm Cargo.toml Cargo.lock -newer "$wasm" -print -quit)" ]; then
      (cd "$dir" && CARGO_TARGET_DIR="$target" scripts/build-pkg.sh) || failed_builds+=("$tree:pkg")
    fi
  fi
}

built() { [[ " ${failed_builds[*]-} " != *" $1 "* ]]; }

# --- one benchmark on one tree ---------------------------------------------------------------
# run_group GROUP DIR TARGET_DIR TREE JSONL: runs GROUP's programs of tree DIR, appending rows
# to JSONL; output to the terminal and target/bench/logs/. Non-zero if a program failed.
run_group() {
  local g=$1 dir=$2 target=$3 tree=$4 jsonl=$5
  local log="$out/logs/$run_id-$tree-$g.log"
  local gw="$target/release/broker-gateway"
  local ex="$target/release/examples"
  echo "==> $g ($tree) $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
  (
    set -o pipefail
    cd "$dir"
    export BENCH_JSON=$jsonl BROKER_GATEWAY_BIN=$gw CARGO_TARGET_DIR=$target
    case "$g" in
      gateway)
        built "$tree:bench" || exit 3
        "$ex/bench" "${BENCH_MESSAGES:-2000000}"
        ;;
      js)
        built "$tree:broker-gateway" && built "$tree:pkg" && built "$tree:bench_publisher" || exit 3
        BENCH_PUBLISHER_BIN="$ex/bench_publisher" N=${JS_MESSAGES:-1000000} node bench/js-bench.mjs
        ;;
      nats)
        N=${JS_MESSAGES:-1000000} node bench/nats-bench.mjs
        ;;
      store)
        built "$tree:store_bench" && built "$tree:broker-gateway" && built "$tree:pkg" || exit 3
        data=$(mktemp -d "${TMPDIR:-/tmp}/broker-store-bench.XXXXXX")
        trap 'rm -rf "$data"' EXIT
        # (-e does not apply here: the caller tests this function's status.)
        "$ex/store_bench" "$data" && ROUNDS=${STORE_ROUNDS:-5000} node bench/store-bench.mjs "$data"
        ;;
      ns)
        built "$tree:ns_bench" || exit 3
        "$ex/ns_bench" "${NS_PAIRS:-200000}"
        ;;
      load)
        built "$tree:load" && built "$tree:broker-gateway" || exit 3
        # Each client is a socket here and one in the gateway (which inherits this limit).
        ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
        "$ex/load" --clients "${LOAD_CLIENTS:-10000}" --seconds "${LOAD_SECONDS:-10}"
        ;;
    esac
  ) 2>&1 | tee "$log"
}

revision() {
  local dir=$1
  local rev
  rev=$(git -C "$dir" rev-parse --short=12 HEAD)
  if [ -n "$(git -C "$dir" status --porcelain --untracked-files=no)" ]; then
    rev="$rev (with uncommitted changes)"
  fi
  echo "$rev"
}

after_target=${CARGO_TARGET_DIR:-$root/target}
after_rows="$out/logs/$run_id-after.jsonl"
: >"$after_rows"

before_rows=""
if [ -n "$compare" ]; then
  before_rev=$(git rev-parse --verify "$compare^{commit}")
  wt="$out/worktree"
  before_target="$out/target-rev"
  before_rows="$out/logs/$run_id-before.jsonl"
  : >"$before_rows"
  # Only a worktree of its own at exactly $wt is reused (never the main work tree around it).
  if [ -d "$wt" ] && [ "$(git -C "$wt" rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$wt" && pwd -P)" ]; then
    git -C "$wt" checkout -q --force --detach "$before_rev"
    git -C "$wt" clean -fdq
  else
    rm -rf "$wt"
    git worktree prune
    git worktree add -q --detach "$wt" "$before_rev"
  fi
  # Today's benchmark programs over REV's, so both sides measure the same way; the test
  # helpers they use only where REV has none.
  mkdir -p "$wt/gateway/examples/common" "$wt/bench" "$wt/tests/node" "$wt/tests/browser"
  cp gateway/examples/*.rs "$wt/gateway/examples/"
  cp gateway/examples/common/*.rs "$wt/gateway/examples/common/"
  cp bench/*.mjs "$wt/bench/"
  cp scripts/bench*.sh scripts/ensure-nats.sh scripts/apt-install.sh "$wt/scripts/"
  for f in tests/node/gateway.mjs tests/node/children.mjs tests/node/chromium.mjs tests/browser/bench.html; do
    [ -e "$wt/$f" ] || cp "$f" "$wt/$f"
  done
  ln -sfn "$root/node_modules" "$wt/node_modules"
  build_tree "$wt" "$before_target" before
fi
build_tree "$root" "$after_target" after

# --- the runs ----------------------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "==> $(nproc) cores, load $load_before; benchmarks: ${groups[*]}${compare:+; before = $compare}"
failed=()
missing_before=()
run_before() { run_group "$1" "$wt" "$before_target" before "$before_rows" || missing_before+=("$1"); }
run_after() { run_group "$1" "$root" "$after_target" after "$after_rows" || failed+=("$1"); }
turn=0
for ((round = 1; round <= rounds; round++)); do
  [ "$rounds" -gt 1 ] && echo "==> round $round of $rounds"
  for g in "${groups[@]}"; do
    if [ -z "$compare" ]; then
      run_after "$g"
    elif ((turn % 2 == 0)); then
      run_before "$g"
      run_after "$g"
    else
      run_after "$g"
      run_before "$g"
    fi
    turn=$((turn + 1))
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the tables --------------------------------------------------------------------------------
join() { local IFS=,; echo "$*"; }
meta=(--cores "$(nproc)" --load-before "$load_before" --load-after "$load_after"
  --groups "$(join "${groups[@]}")" --rounds "$rounds")
node bench/report.mjs latest --rows "$after_rows" --out "$out" --rev "$(revision "$root")" \
  "${meta[@]}" --failed "$(join "${failed[@]}")"
if [ -n "$compare" ]; then
  node bench/report.mjs compare --before "$before_rows" --after "$after_rows" --out "$out" \
    --before-rev "$compare = $(git rev-parse --short=12 "$before_rev")" \
    --after-rev "$(revision "$root")" "${meta[@]}" --failed "$(join "${failed[@]}")" \
    --missing-before "$(join "${missing_before[@]}")"
fi
cat "$out/latest.md"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]} (logs in $out/logs/)" >&2
  exit 1
fi
