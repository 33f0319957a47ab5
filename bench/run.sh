#!/usr/bin/env bash
# modelyard vs the Python floor vs nginx (and LiteLLM with FULL=1) on ../shared/bench's harness:
# fake upstream + wrk, gateway pinned to one core, runs interleaved. Results land in $OUT.
#   bash bench/run.sh                       # quick: c=1,10,50, both modes, 5 s x 2 reps
#   FULL=1 bash bench/run.sh                # adds LiteLLM and Portkey-free reference set, 10 s x 3 reps
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/bench}"
[ -x "$HARNESS/run_gateway_bench.sh" ] || { echo "harness not found at $HARNESS (set HARNESS=...)" >&2; exit 2; }
PORT="${MODELYARD_BENCH_PORT:-14020}"
GW="modelyard|http://127.0.0.1:$PORT/v1|$ROOT/.venv/bin/modelyard serve --config $ROOT/bench/gateway.yaml --host 127.0.0.1 --port $PORT"
EXTRA=()
if [ "${FULL:-0}" = 1 ]; then
  EXTRA+=(--litellm)
  exec bash "$HARNESS/run_gateway_bench.sh" -d "${DURATION:-10}" -r "${REPS:-3}" --floor --nginx "${EXTRA[@]}" --gateway "$GW"
fi
exec bash "$HARNESS/run_gateway_bench.sh" -d "${DURATION:-5}" -r "${REPS:-2}" --floor --nginx --gateway "$GW"
