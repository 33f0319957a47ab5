#!/usr/bin/env bash
# modelyard vs the Python floor vs nginx (and LiteLLM + Portkey with FULL=1) on ../shared/bench's
# harness: fake upstream + wrk, gateway pinned to one core, runs interleaved. Results land in $OUT.
#   bash bench/run.sh                       # quick: c=1,10,50, both modes, 5 s x 2 reps
#   FULL=1 bash bench/run.sh                # + LiteLLM (both modes, a run of its own) and Portkey (non-stream: its
#                                           #   streaming fails on Node 20), 10 s x 3 reps
#   WORKERS=1 bash bench/run.sh             # modelyard --workers 1 vs --workers 2 (both cores)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The harness (fake upstream, wrk script, the floor and nginx references) lives outside the repo: $HARNESS,
# or ../shared/bench beside the checkout (beside the main checkout when this is a git worktree).
find_harness() {
  local common dir
  common="$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  for dir in "${HARNESS:-}" "$ROOT/../shared/bench" "${common:+$(dirname "$common")/../shared/bench}"; do
    if [ -n "$dir" ] && [ -x "$dir/run_gateway_bench.sh" ]; then (cd "$dir" && pwd); return 0; fi
  done
  return 1
}
if ! HARNESS="$(find_harness)"; then
  cat >&2 <<'TEXT'
The gateway benchmark needs the shared harness (run_gateway_bench.sh, fake_upstream.py, post.lua with wrk,
floor_proxy.py), looked for in $HARNESS and in ../shared/bench beside the checkout: set HARNESS=/path/to/it.
The benchmarks that need nothing outside the repo:
  .venv/bin/python bench/routing_bench.py     # routing decisions, p50/p99 (docs/BENCHMARKS.md)
  .venv/bin/python bench/modes.py             # the multi-model modes' overhead
Running the routing benchmark now.
TEXT
  exec "${PYTHON:-$ROOT/.venv/bin/python}" "$ROOT/bench/routing_bench.py" -n "${DECISIONS:-5000}"
fi
PORT="${MODELYARD_BENCH_PORT:-14020}"
SERVE="$ROOT/.venv/bin/modelyard serve --config $ROOT/bench/gateway.yaml --host 127.0.0.1"
GW="modelyard|http://127.0.0.1:$PORT/v1|$SERVE --port $PORT"
RUN=(bash "$HARNESS/run_gateway_bench.sh")
if [ "${WORKERS:-0}" = 1 ]; then
  # Two workers need both cores, which the upstream and wrk share: read it as "what a second core buys".
  GATEWAY_CPUS="0,1" exec "${RUN[@]}" -d "${DURATION:-5}" -r "${REPS:-2}" -c "${CONCURRENCY:-50}" \
    --gateway "modelyard-1w|http://127.0.0.1:$PORT/v1|$SERVE --port $PORT --workers 1" \
    --gateway "modelyard-2w|http://127.0.0.1:$((PORT + 1))/v1|$SERVE --port $((PORT + 1)) --workers 2"
fi
if [ "${FULL:-0}" = 1 ]; then
  # LiteLLM in a run of its own: the harness runs it just before the first --gateway, which then shares
  # its core with the requests LiteLLM is still working off (docs/BENCHMARKS.md: up to 13 % lost)
  "${RUN[@]}" -d "${DURATION:-10}" -r "${REPS:-3}" --floor --nginx --gateway "$GW"
  "${RUN[@]}" -d "${DURATION:-10}" -r "${REPS:-3}" --litellm --gateway "$GW"
  exec "${RUN[@]}" -d "${DURATION:-10}" -r "${REPS:-3}" -m nonstream --floor --portkey --gateway "$GW"
fi
exec "${RUN[@]}" -d "${DURATION:-5}" -r "${REPS:-2}" --floor --nginx --gateway "$GW"
