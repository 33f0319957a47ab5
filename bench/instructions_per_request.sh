#!/usr/bin/env bash
# CPU instructions per request (every thread of the process), counted by valgrind. The figure barely
# moves with the load on the box (two runs agree within ~1 %), so it shows changes of a few percent
# that req/s and µs cannot.
#   bash bench/instructions_per_request.sh [CONFIG|--floor]          in process: bench/inprocess_driver.py
#       drives the ASGI app (no HTTP server) 100 and then 1,100 measured requests after the same
#       warm-up; the difference over 1,000 is the figure. --floor: bench/wreq_floor.py's app.
#   bash bench/instructions_per_request.sh --http [CONFIG|--floor]   the whole server: `modelyard serve`
#       (bench/serve_counted.py: the disconnect watch's threshold scaled to valgrind's slowdown)
#       (or, with --floor, the harness's floor_proxy.py: uvicorn + aiohttp) under valgrind, driven over
#       loopback by the harness's loadgen.py at c=20; two servers, 200 and 1,200 requests after 300
#       warm-up ones, the difference over 1,000. This is the figure the harness's req/s ratio follows.
#       --const / --const-uvicorn: bench/const_app.py, a constant answer through our HTTP/1.1 protocol /
#       uvicorn's (the server layer's own cost).
# Needs valgrind (apt-get install valgrind); starts the harness's fake upstream on a free port.
set -euo pipefail
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
HARNESS="${HARNESS:-$ROOT/../shared/bench}"
if [ ! -d "$HARNESS" ]; then  # a git worktree elsewhere: the harness beside the main checkout
  HARNESS="$(dirname "$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir)")/../shared/bench"
fi
[ -f "$HARNESS/fake_upstream.py" ] || { echo "harness not found at $HARNESS: set HARNESS=/path/to/shared/bench" >&2; exit 2; }
HTTP=0; [ "${1:-}" = --http ] && { HTTP=1; shift; }
TARGET="${1:-$ROOT/bench/gateway.yaml}"
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
export UPSTREAM_URL="http://127.0.0.1:$UP_PORT/v1" BENCH_KEY="${BENCH_KEY:-sk-bench-cpu-per-request-0123456789abcdef}"
BENCH_OUT="$(mktemp -d)"; export BENCH_OUT
"$PY" "$HARNESS/fake_upstream.py" "$UP_PORT" >/dev/null 2>&1 & UP=$!
SERVER=""
trap 'kill $UP 2>/dev/null; [ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$BENCH_OUT"' EXIT
sleep 1
instructions() { awk '/I +refs/ {gsub(",", "", $4); print $4}' "$1"; }

count() {  # in process: measured requests -> total instructions (refuses a run where any request failed)
  rm -f "$BENCH_OUT"/*
  local args=("$TARGET"); [ "$TARGET" = --floor ] && args=(--floor)
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$PY" "$ROOT/bench/inprocess_driver.py" "${args[@]}" -n "$1" --reps 1 --warm 300 --slowdown 50 >"$BENCH_OUT/run.log" 2>&1
  grep -q "^statuses: {200: [0-9]*}$" "$BENCH_OUT/run.log" || { echo "requests failed: $(grep statuses "$BENCH_OUT/run.log")" >&2; exit 1; }
  instructions "$BENCH_OUT/run.log"
}

count_http() {  # the whole server: measured requests -> total instructions of the server process
  rm -f "$BENCH_OUT"/*.db*
  local port url cmd
  port=$(free_port); url="http://127.0.0.1:$port/v1/chat/completions"
  if [ "$TARGET" = --floor ]; then cmd=("$PY" "$HARNESS/floor_proxy.py" --port "$port")
  elif [ "$TARGET" = --const ]; then cmd=("$PY" "$ROOT/bench/const_app.py" --port "$port")
  elif [ "$TARGET" = --const-uvicorn ]; then cmd=("$PY" "$ROOT/bench/const_app.py" --uvicorn --port "$port")
  else cmd=("$PY" "$ROOT/bench/serve_counted.py" serve --config "$TARGET" --host 127.0.0.1 --port "$port"); fi
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "${cmd[@]}" >"$BENCH_OUT/server.log" 2>&1 &
  SERVER=$!
  local i
  for i in $(seq 240); do
    curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $BENCH_KEY" -H 'content-type: application/json' \
      -d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}' "$url" 2>/dev/null | grep -q 200 && break
    kill -0 $SERVER 2>/dev/null || { echo "the server exited: $(tail -5 "$BENCH_OUT/server.log")" >&2; exit 1; }
    sleep 0.5
  done
  "$PY" "$HARNESS/loadgen.py" "$url" -c 20 -n 300 --key "$BENCH_KEY" >/dev/null
  local out
  out=$("$PY" "$HARNESS/loadgen.py" "$url" -c 20 -n "$1" --key "$BENCH_KEY" | grep '^RESULT')
  echo "$out" | grep -q "requests=$1 .*err_connect=0 err_read=0 err_write=0 err_status=0" \
    || { echo "requests failed: $out" >&2; exit 1; }
  kill -INT $SERVER; wait $SERVER || true; SERVER=""
  instructions "$BENCH_OUT/server.log"
}

if [ $HTTP = 1 ]; then
  a=$(count_http 200); b=$(count_http 1200)
  echo "--http $TARGET: $(( (b - a) / 1000 )) instructions per request"
else
  a=$(count 100); b=$(count 1100)
  echo "$TARGET: $(( (b - a) / 1000 )) instructions per request"
fi
