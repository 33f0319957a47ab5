#!/usr/bin/env bash
# CPU time per request of the response cache's miss path over HTTP: two gateways on bench/gateway.yaml,
# one with `cache: off`, one with `cache: exact`, both pinned to CPU 1, loaded in turn by wrk with
# bench/post_unique.lua (every user turn new: the exact cache looks up, misses, calls the fake upstream
# and stores). user+sys ticks of each gateway process (all threads) / requests answered: unlike req/s
# this barely moves when other jobs share the box, so it is the figure to compare changes with.
#   bash bench/cache_cpu.sh [nonstream|stream] [concurrency] [seconds] [reps]
#   MODES="off exact semantic" ...     the cache modes compared (default: off exact)
#   MODES="off exact off@/tmp/old/src exact@/tmp/old/src" ...   also another source tree's gateways (before/after)
#   MODES="floor off exact" ...        also the harness's floor_proxy.py (the pass-through the hot-path target is
#                                      measured against; FLOOR_VENV as the harness's, created when missing)
#   PYSPY=/path/to/py-spy ...          also a py-spy profile of each gateway during its last rep
#                                      (PYSPY_ARGS="--native": C frames too; default --nonblocking)
# The processes live through every rep, so later reps run with a full cache (10,000 entries: each
# store evicts one).
set -euo pipefail
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/bench}"
if [ ! -d "$HARNESS" ]; then  # a git worktree elsewhere: the harness beside the main checkout
  HARNESS="$(dirname "$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir)")/../shared/bench"
fi
PY="${PYTHON:-$ROOT/.venv/bin/python}"
MODE="${1:-nonstream}"; C="${2:-50}"; D="${3:-5}"; REPS="${4:-3}"
OUT="${OUT:-${TMPDIR:-/tmp}/gwbench/cache-cpu-$(date +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
export UPSTREAM_URL="http://127.0.0.1:$UP_PORT/v1" BENCH_KEY="${BENCH_KEY:-sk-bench-cache-cpu-0123456789abcdef}"
[ "$MODE" = stream ] && export BENCH_STREAM=1
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c 0 "$PY" "$HARNESS/fake_upstream.py" "$UP_PORT" >"$OUT/upstream.log" 2>&1 & pids+=($!)
declare -A PID PORT
FLOOR_VENV="${FLOOR_VENV:-${TMPDIR:-/tmp}/gwbench/floor-venv}"
case " ${MODES:-} " in *" floor "*)
  if [ ! -x "$FLOOR_VENV/bin/python" ]; then
    mkdir -p "$(dirname "$FLOOR_VENV")" && python3 -m venv "$FLOOR_VENV"
    "$FLOOR_VENV/bin/pip" install -q uvicorn uvloop httptools aiohttp >/dev/null || { rm -rf "$FLOOR_VENV"; exit 2; }
  fi;;
esac
for m in ${MODES:-off exact}; do
  if [ "$m" = floor ]; then
    PORT[$m]=$(free_port); mkdir -p "$OUT/floor"
    taskset -c 1 "$FLOOR_VENV/bin/python" "$HARNESS/floor_proxy.py" --port "${PORT[$m]}" >"$OUT/floor/serve.log" 2>&1 &
    pids+=($!); PID[$m]=$!
    continue
  fi
  src="$ROOT/src"; [ "$m" != "${m#*@}" ] && src="${m#*@}"
  PORT[$m]=$(free_port)
  mkdir -p "$OUT/${m//\//_}"
  BENCH_CACHE=${m%@*} BENCH_OUT="$OUT/${m//\//_}" PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}" taskset -c 1 \
    "$PY" -m modelyard.cli serve --config "$ROOT/bench/gateway.yaml" --host 127.0.0.1 --port "${PORT[$m]}" \
    >"$OUT/${m//\//_}/serve.log" 2>&1 & pids+=($!); PID[$m]=$!
done
for m in ${MODES:-off exact}; do
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:${PORT[$m]}/health" && break; sleep 0.1; done
done
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
measure() {  # mode rep
  local m=$1 url="http://127.0.0.1:${PORT[$1]}/v1/chat/completions" hz; hz=$(getconf CLK_TCK)
  [ "$2" = 1 ] && taskset -c 0 wrk -t1 -c"$C" -d2s -s "$ROOT/bench/post_unique.lua" "$url" >/dev/null  # warm-up
  local spy=""
  if [ -n "${PYSPY:-}" ] && [ "$2" = "$REPS" ]; then
    "$PYSPY" record -r 500 ${PYSPY_ARGS:---nonblocking} -p "${PID[$m]}" -d "$D" -f raw -o "$OUT/${m//\//_}/profile.txt" \
      >/dev/null 2>&1 & spy=$!
  fi
  local t0 out t1; t0=$(ticks "${PID[$m]}")
  out=$(taskset -c 0 wrk -t1 -c"$C" -d"${D}s" -s "$ROOT/bench/post_unique.lua" "$url")
  t1=$(ticks "${PID[$m]}")
  [ -n "$spy" ] && wait "$spy"
  local line; line=$(echo "$out" | grep '^RESULT')
  local n; n=$(echo "$line" | sed 's/.*requests=\([0-9]*\).*/\1/')
  local rps; rps=$(echo "$line" | sed 's/.* rps=\([0-9.]*\).*/\1/')
  local bad; bad=$(echo "$line" | sed 's/.*err_status=\([0-9]*\).*/\1/')
  awk -v m="$m" -v t="$((t1 - t0))" -v hz="$hz" -v n="$n" -v rps="$rps" -v bad="$bad" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN {printf "cache-%-8s %s c=%s  %8.1f us CPU/request  %9.1f req/s  %5.1f %% busy  (%d requests, %s non-2xx, load %s)\n", m, "'"$MODE"'", "'"$C"'", t / hz / n * 1e6, rps, t / hz / n * rps * 100, n, bad, load}'
}
for r in $(seq "$REPS"); do
  for m in ${MODES:-off exact}; do measure "$m" "$r" | tee -a "$OUT/results.txt"; done
done
echo "median of $REPS ($OUT):"
for m in ${MODES:-off exact}; do
  grep -F "cache-$m " "$OUT/results.txt" | awk '{print $4}' | sort -n | awk -v m="$m" \
    '{v[NR]=$1} END {if (NR) printf "  cache-%-8s %8.1f us CPU/request", m, v[int((NR+1)/2)]}'
  grep -F "cache-$m " "$OUT/results.txt" | awk '{print $7}' | sort -n | awk \
    '{v[NR]=$1} END {if (NR) printf "  %9.1f req/s\n", v[int((NR+1)/2)]}'
done
