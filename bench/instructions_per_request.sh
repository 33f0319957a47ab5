#!/usr/bin/env bash
# CPU instructions per request (every thread of the process), counted by valgrind: the in-process
# driver (bench/inprocess_driver.py) runs 100 and then 1,100 measured requests after the same warm-up,
# and the difference over 1,000 is the figure. It barely moves with the load on the box (two runs
# agree within ~1 %), so it shows changes of a few percent that req/s and µs cannot.
#   bash bench/instructions_per_request.sh [CONFIG|--floor]      (default: bench/gateway.yaml)
# Needs valgrind (apt-get install valgrind); starts the harness's fake upstream on a free port.
set -euo pipefail
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/bench}"
if [ ! -d "$HARNESS" ]; then  # a git worktree elsewhere: the harness beside the main checkout
  HARNESS="$(dirname "$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir)")/../shared/bench"
fi
[ -f "$HARNESS/fake_upstream.py" ] || { echo "harness not found at $HARNESS: set HARNESS=/path/to/shared/bench" >&2; exit 2; }
TARGET="${1:-$ROOT/bench/gateway.yaml}"
UP_PORT=$("$ROOT/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export UPSTREAM_URL="http://127.0.0.1:$UP_PORT/v1" BENCH_KEY="${BENCH_KEY:-sk-bench-cpu-per-request-0123456789abcdef}"
BENCH_OUT="$(mktemp -d)"; export BENCH_OUT
"$ROOT/.venv/bin/python" "$HARNESS/fake_upstream.py" "$UP_PORT" >/dev/null 2>&1 & UP=$!
trap 'kill $UP 2>/dev/null; rm -rf "$BENCH_OUT"' EXIT
sleep 1
count() {  # measured requests -> total instructions (refuses a run where any request failed)
  rm -f "$BENCH_OUT"/*
  local args=("$TARGET"); [ "$TARGET" = --floor ] && args=(--floor)
  local out
  out=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$ROOT/.venv/bin/python" "$ROOT/bench/inprocess_driver.py" "${args[@]}" -n "$1" --reps 1 --warm 300 2>&1)
  echo "$out" | grep -q "^statuses: {200: [0-9]*}$" || { echo "requests failed: $(echo "$out" | grep statuses)" >&2; exit 1; }
  echo "$out" | awk '/I +refs/ {gsub(",", "", $4); print $4}'
}
a=$(count 100); b=$(count 1100)
echo "$TARGET: $(( (b - a) / 1000 )) instructions per request"
