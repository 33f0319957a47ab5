"""Request-log cost: rows/s and writer CPU per row (SQLite vs Postgres), and the event loop's cost per row.

Writer: the same `RequestLog` writer (store/sqlite.py; the Postgres log reuses its buffering) is fed N
rows as fast as `record` takes them, then `flush`ed: rows/s = N / (time from the first record to the
last row committed); writer CPU/row = CPU time of the log's threads over the run / N (the threads'
clocks, so other jobs on the box barely move it; for Postgres, the client thread that encodes the COPY,
not the server process). Postgres is a throwaway server started here (initdb + pg_ctl, as the
`postgres` user when run as root) with its default durability (fsync on). SQLite is a file in WAL
mode with synchronous=NORMAL, as the gateway opens it. Runs alternate between backends; medians are
reported.

Loop (`--loop`): what logging one request costs the event loop: `request_row` as the gateway calls it
(a first-healthy decision from the real router, fresh per request) plus `record` (and, `--window`, the
dashboard window's `observe`, which the server always installs), per row, on the thread's CPU clock
(time spent preempted by other jobs is not counted), and the same over a reference loop timed in place
(`ratio`: comparable between runs).

    PYTHONPATH=src python bench/request_log_bench.py [--rows 50000] [--runs 5] [--batch 500]
        [--backends sqlite,postgres] [--loop [--window]]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))

from modelyard.gateway import Gateway, new_request_id
from modelyard.loader import parse_config
from modelyard.store.rolling import Rolling
from modelyard.store.rows import Row, request_row
from modelyard.store.sqlite import RequestLog
from modelyard.types import Caller, ChatRequest, Message, RouteDecision, Scored, Usage


def rows(n: int, tag: str) -> list[Row]:
    d = RouteDecision(model="auto", deployment="sim/fast", strategy="score", reason="best score",
                      candidates=[Scored("sim/fast", 0.9), Scored("sim/smart", 0.5)], features={"task": "chat"})
    caller = Caller(key_id="key_1", team="ml", user="ana")
    return [request_row(f"{tag}-{i}", "auto", 200, deployment="sim/fast", provider="sim",
                        usage=Usage(input_tokens=120, output_tokens=40), cost_usd=0.00012, latency_ms=35.0,
                        decision=d, caller=caller) for i in range(n)]


def _log_thread_cpu() -> float:
    """CPU seconds so far of the request log's writer thread and, for Postgres, of the client's own
    thread where the batches are encoded and sent (store/postgres/db.py)."""
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for t in threading.enumerate()
               if t.name.startswith(("modelyard-request-log", "modelyard-postgres")) and t.ident is not None)


async def run_once(log: RequestLog, batch: list[Row]) -> tuple[float, float]:
    """(rows/s, writer CPU µs per row)."""
    await log.start()
    cpu0 = _log_thread_cpu()
    t0 = time.perf_counter()
    for r in batch:
        log.record(r)
        if log.pending >= log.batch_size:
            await asyncio.sleep(0)  # let the writer take the batch, as the server's loop would
    while log.written < len(batch):
        await log.flush()
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - t0
    cpu = _log_thread_cpu() - cpu0
    await log.close()
    assert log.dropped == 0 and log.spilled == 0
    return len(batch) / elapsed, cpu / len(batch) * 1e6


def writer(args: argparse.Namespace) -> None:
    kinds = args.backends.split(",")
    server: Any = None
    if "postgres" in kinds:
        from pg_server import PgServer

        server = PgServer(fsync=True)
        server.start()
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-logbench-"))
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    try:
        for run in range(args.runs):
            for kind in (kinds if run % 2 == 0 else kinds[::-1]):
                batch = rows(args.rows, f"{kind}{run}")
                kw: dict[str, Any] = {"flush_interval_s": 0.05, "batch_size": args.batch,
                                      "max_buffer_rows": args.rows * 2}
                if kind == "sqlite":
                    log = RequestLog(str(tmp / f"log{run}.db"), **kw)
                else:
                    from modelyard.store.location import register
                    from modelyard.store.postgres.db import database
                    from modelyard.store.postgres.log import PgRequestLog

                    loc = register(server.createdb(f"bench{run}"))
                    database(loc).run(lambda c: c.fetchval("SELECT 1"))  # connect + migrate outside the timing
                    log = PgRequestLog(loc, spill_path=str(tmp / "pg"), **kw)
                rate, cpu = asyncio.run(run_once(log, batch))
                out[kind].append((rate, cpu))
                print(f"run {run + 1} {kind:8s} {rate:10,.0f} rows/s  writer thread {cpu:6.2f} µs CPU/row", flush=True)
    finally:
        if server is not None:
            server.destroy()
    for kind, res in out.items():
        rates, cpus = [r for r, _ in res], [c for _, c in res]
        print(f"{kind:8s} median {statistics.median(rates):10,.0f} rows/s  writer {statistics.median(cpus):6.2f} "
              f"µs CPU/row  (runs: {', '.join(f'{r:,.0f}' for r in rates)})")


def loop(args: argparse.Namespace) -> None:
    """The event loop's cost of logging one request (request_row + record), normalised in place."""
    gw = Gateway(parse_config({"deployments": {"upstream": {"provider": "sim", "model": "sim/fast"}},
                               "model_groups": {"bench-model": {"deployments": ["upstream"]}}}), request_log=False)
    req = ChatRequest(model="bench-model", messages=[Message("user", "Say hello.")],
                      caller=Caller(key_id="key_bench", key_name="bench", team="bench"))
    route, dep, usage = gw.resolve("bench-model"), gw.deployments["upstream"], Usage(input_tokens=12, output_tokens=9)
    n = min(args.rows, 20_000)
    res: list[tuple[float, float]] = []
    for _ in range(args.runs * 3):
        decisions = []
        for _ in range(n):
            _chain, d = gw.plan(route, req)
            d.attempts, d.upstream_s = 1, 0.002
            decisions.append(d)
        rids = [new_request_id() for _ in range(n)]
        log = RequestLog(":memory:", batch_size=n + 1, max_buffer_rows=n + 1)  # never started: record only
        live = Rolling(span_s=900.0, bucket_s=1.0)  # the server's dashboard window, always installed
        t0 = time.thread_time()
        for i in range(n):
            row = request_row(rids[i], req.model, 200, deployment=dep.name, provider=dep.provider, error_type=None,
                              error=None, usage=usage, cost_usd=0.00012, latency_ms=3.2, ttft_ms=None, stream=False,
                              user=req.user, api="openai", decision=decisions[i], caller=req.caller, cache=None,
                              saved_usd=0.0, experiment=req.experiment)
            log.record(row)
            if args.window:
                live.observe(row)
        per_row = (time.thread_time() - t0) / n * 1e6
        t0 = time.thread_time()
        x = 0
        for i in range(n * 10):  # the reference loop
            x += i
        res.append((per_row, (time.thread_time() - t0) / n * 1e6))
    what = "request_row + record" + (" + dashboard window" if args.window else "")
    print(f"loop: {what} median {statistics.median(r for r, _ in res):.2f} µs/row "
          f"(min {min(r for r, _ in res):.2f}); reference loop {statistics.median(f for _, f in res):.3f} µs; "
          f"ratio {statistics.median(r / f for r, f in res):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    ap.add_argument("--loop", action="store_true", help="the event loop's cost per row instead of the writer's")
    ap.add_argument("--window", action="store_true", help="--loop: with the dashboard window's observe (Rolling)")
    args = ap.parse_args()
    loop(args) if args.loop else writer(args)


if __name__ == "__main__":
    main()
