#!/usr/bin/env bash
# CPU time the gateway process spends per request (user+sys from /proc, all its threads), under wrk
# load through ../shared/bench's fake upstream. Unlike req/s it barely moves when other jobs share
# the box, so it is the figure to compare changes with; run_gateway_bench.sh gives the req/s table.
#   bash bench/cpu_per_request.sh [nonstream|stream] [concurrency] [seconds] [reps]
# Compares modelyard (bench/gateway.yaml) with the floor (floor_proxy.py), both pinned to CPU 1,
# interleaved rep by rep; the last lines give each one's median.
#   FLOOR_SCRIPT=bench/wreq_floor.py FLOOR_PY=.venv/bin/python ...   the floor on modelyard's own stack
#   THREADS=1 ...   also each thread's CPU and context switches per request (event loop, client I/O, log)
set -euo pipefail
command -v wrk >/dev/null || { echo "wrk not found: run the harness once (it installs wrk) or apt-get install wrk" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/bench}"
if [ ! -d "$HARNESS" ]; then  # a git worktree elsewhere: the harness beside the main checkout
  HARNESS="$(dirname "$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir)")/../shared/bench"
fi
[ -f "$HARNESS/fake_upstream.py" ] || { echo "harness not found at $HARNESS: set HARNESS=/path/to/shared/bench" >&2; exit 2; }
MODE="${1:-nonstream}"; C="${2:-50}"; D="${3:-5}"; REPS="${4:-3}"
FLOOR_PY="${FLOOR_PY:-${TMPDIR:-/tmp}/gwbench/floor-venv/bin/python}"
UP_PORT=18031; GW_PORT=14031; FLOOR_PORT=14032
export UPSTREAM_URL="http://127.0.0.1:$UP_PORT/v1" BENCH_KEY="${BENCH_KEY:-sk-bench-cpu-per-request-0123456789abcdef}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c 0 "$ROOT/.venv/bin/python" "$HARNESS/fake_upstream.py" "$UP_PORT" >/dev/null 2>&1 & pids+=($!)
PYTHONPATH="${MODELYARD_SRC:-}" taskset -c 1 "$ROOT/.venv/bin/modelyard" serve --config "${GATEWAY_CONFIG:-$ROOT/bench/gateway.yaml}" --host 127.0.0.1 \
  --port "$GW_PORT" >/tmp/cpu_per_request.gw.log 2>&1 & pids+=($!); GW_PID=$!
if [ -x "$FLOOR_PY" ]; then
  taskset -c 1 "$FLOOR_PY" "${FLOOR_SCRIPT:-$HARNESS/floor_proxy.py}" --port "$FLOOR_PORT" \
    >/tmp/cpu_per_request.floor.log 2>&1 & pids+=($!); FLOOR_PID=$!
else
  FLOOR_PID=""; echo "no floor venv at $FLOOR_PY (run the harness with --floor once): floor skipped" >&2
fi
for _ in $(seq 300); do  # ready when both answer /health (30 s at most)
  curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null && { [ -z "$FLOOR_PID" ] || curl -s "http://127.0.0.1:$FLOOR_PORT/" >/dev/null; } && break
  sleep 0.1
done
[ "$MODE" = stream ] && STREAM=true || STREAM=false
cat > /tmp/cpu_per_request.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $BENCH_KEY"
wrk.body = '{"model":"bench-model","stream":$STREAM,"messages":[{"role":"user","content":"Say hello."}]}'
LUA
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
threads() {  # pid: "tid name cpu-ticks voluntary involuntary" per thread
  for t in /proc/"$1"/task/*; do
    echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(awk '{print $14+$15}' "$t/stat") $(awk '/voluntary_ctxt/ {printf "%s ", $2}' "$t/status")"
  done | sort
}
measure() {  # name pid url
  local hz; hz=$(getconf CLK_TCK)
  taskset -c 0 wrk -t1 -c"$C" -d2s -s /tmp/cpu_per_request.lua "$3" >/dev/null  # warm-up
  local t0; t0=$(ticks "$2")
  [ "${THREADS:-0}" = 1 ] && threads "$2" > /tmp/cpu_per_request.threads0
  local out; out=$(taskset -c 0 wrk -t1 -c"$C" -d"${D}s" -s /tmp/cpu_per_request.lua "$3")
  local t1; t1=$(ticks "$2")
  [ "${THREADS:-0}" = 1 ] && threads "$2" > /tmp/cpu_per_request.threads1
  local n; n=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  awk -v name="$1" -v t="$((t1 - t0))" -v hz="$hz" -v n="$n" -v rps="$rps" -v bad="${non2xx:-0}" \
    'BEGIN {printf "%-10s %s c=%s  %8.1f us CPU/request  %9.1f req/s  (%d requests, %s non-2xx)\n", name, "'"$MODE"'", "'"$C"'", t / hz / n * 1e6, rps, n, bad}'
  if [ "${THREADS:-0}" = 1 ]; then
    join /tmp/cpu_per_request.threads0 /tmp/cpu_per_request.threads1 | awk -v n="$n" -v hz="$hz" \
      '$7 > $3 {printf "    thread %-22s %7.1f us/request, switches/request: %.2f voluntary, %.2f preempted\n", $2, ($7-$3)/hz/n*1e6, ($8-$4)/n, ($9-$5)/n}' >&2
  fi
}
RESULTS=$(mktemp)
for _ in $(seq "$REPS"); do
  measure modelyard "$GW_PID" "http://127.0.0.1:$GW_PORT/v1/chat/completions" | tee -a "$RESULTS"
  [ -n "$FLOOR_PID" ] && measure floor "$FLOOR_PID" "http://127.0.0.1:$FLOOR_PORT/v1/chat/completions" | tee -a "$RESULTS"
done
echo "median of $REPS:"
for name in modelyard floor; do
  grep "^$name " "$RESULTS" | awk '{print $4}' | sort -n | awk -v n="$name" \
    '{v[NR]=$1} END {if (NR) printf "  %-10s %8.1f us CPU/request\n", n, v[int((NR+1)/2)]}'
done
rm -f "$RESULTS"
