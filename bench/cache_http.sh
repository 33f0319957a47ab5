#!/usr/bin/env bash
# The response cache through real HTTP on ../shared/bench's harness (fake upstream + wrk, gateway pinned to
# one core, runs interleaved, a fresh process per rep), against the Python floor's pass-through:
#   hits:   the harness's post.lua sends one request over and over: with `cache: exact` every request after
#           the first is a hit; the floor and modelyard with the cache off pass every one through.
#   misses: bench/post_unique.lua (in a copy of the harness, in place of post.lua) makes every user turn new:
#           the cache looks up, misses, calls the upstream and stores; vs the cache off and the floor.
#   bash bench/cache_http.sh                        # both scenarios, c=1 and 50, 5 s x 3 reps
#   SCENARIOS=hits MODES="nonstream stream" REPS=5 bash bench/cache_http.sh
#   PYTHON=/path/to/venv/bin/python ...            # default: .venv/bin/python of this checkout
# Results land in $OUT/<scenario>/ (default /tmp/gwbench/cache-<timestamp>/); the tables are in each summary.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
find_harness() {
  local common dir
  common="$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  for dir in "${HARNESS:-}" "$ROOT/../shared/bench" "${common:+$(dirname "$common")/../shared/bench}"; do
    if [ -n "$dir" ] && [ -x "$dir/run_gateway_bench.sh" ]; then (cd "$dir" && pwd); return 0; fi
  done
  return 1
}
HARNESS="$(find_harness)" || { echo "needs ../shared/bench (run_gateway_bench.sh): set HARNESS=/path/to/it" >&2; exit 2; }
PY="${PYTHON:-$ROOT/.venv/bin/python}"
# free loopback ports unless given: other benchmarks may be running the harness on its default ports
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="${MODELYARD_BENCH_PORT:-$(free_port)}"; PORT2="$(free_port)"
export UPSTREAM_PORT="${UPSTREAM_PORT:-$(free_port)}" FLOOR_PORT="${FLOOR_PORT:-$(free_port)}"
OUT="${OUT:-${TMPDIR:-/tmp}/gwbench/cache-$(date +%Y%m%d-%H%M%S)}"
# each gateway gets its own request log (and the cache mode) by environment; $BENCH_OUT is the harness's
serve() { # name cache-mode port
  printf '%s|http://127.0.0.1:%s/v1|mkdir -p "$BENCH_OUT/%s" && BENCH_CACHE=%s BENCH_OUT="$BENCH_OUT/%s" PYTHONPATH=%q %q -m modelyard.cli serve --config %q --host 127.0.0.1 --port %s' \
    "$1" "$3" "$1" "$2" "$1" "$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$ROOT/bench/gateway.yaml" "$3"
}
ARGS=(-d "${DURATION:-5}" -r "${REPS:-3}" -c "${CONCURRENCY:-1 50}" --floor
      --gateway "$(serve cache-off off "$PORT")" --gateway "$(serve cache-exact exact "$PORT2")")
for scenario in ${SCENARIOS:-hits misses}; do
  dir="$HARNESS"
  if [ "$scenario" = misses ]; then
    dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
    cp -p "$HARNESS"/* "$dir"/ && cp "$ROOT/bench/post_unique.lua" "$dir/post.lua"
  fi
  echo "== $scenario: $OUT/$scenario"
  OUT="$OUT/$scenario" bash "$dir/run_gateway_bench.sh" -m "${MODES:-nonstream}" "${ARGS[@]}"
done
