"""Request-log insert throughput: rows/s written by the log's writer, SQLite vs Postgres.

The same `RequestLog` writer (store/sqlite.py; the Postgres log reuses its buffering) is fed N rows
as fast as `record` takes them, then `flush`ed: rows/s = N / (time from the first record to the last
row committed). Postgres is a throwaway server started here (initdb + pg_ctl, as the `postgres` user
when run as root) with its default durability (fsync on); SQLite is a file in WAL mode with
synchronous=NORMAL, as the gateway opens it. Runs alternate between the two; medians are reported.

    PYTHONPATH=src python bench/request_log_bench.py [--rows 50000] [--runs 5] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))

from pg_server import PgServer

from modelyard.store.location import register
from modelyard.store.postgres.db import database
from modelyard.store.postgres.log import PgRequestLog
from modelyard.store.rows import request_row
from modelyard.store.sqlite import RequestLog
from modelyard.types import Caller, RouteDecision, Scored, Usage


def rows(n: int, tag: str) -> list:  # type: ignore[type-arg]
    d = RouteDecision(model="auto", deployment="sim/fast", strategy="score", reason="best score",
                      candidates=[Scored("sim/fast", 0.9), Scored("sim/smart", 0.5)], features={"task": "chat"})
    caller = Caller(key_id="key_1", team="ml", user="ana")
    return [request_row(f"{tag}-{i}", "auto", 200, deployment="sim/fast", provider="sim",
                        usage=Usage(input_tokens=120, output_tokens=40), cost_usd=0.00012, latency_ms=35.0,
                        decision=d, caller=caller) for i in range(n)]


async def run_once(log: RequestLog, batch: list) -> float:  # type: ignore[type-arg]
    await log.start()
    t0 = time.perf_counter()
    for r in batch:
        log.record(r)
        if log.pending >= log.batch_size:
            await asyncio.sleep(0)  # let the writer take the batch, as the server's loop would
    while log.written < len(batch):
        await log.flush()
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - t0
    await log.close()
    assert log.dropped == 0 and log.spilled == 0
    return len(batch) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    server = PgServer(fsync=True)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-logbench-"))
    out: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    try:
        for run in range(args.runs):
            for kind in (("sqlite", "postgres") if run % 2 == 0 else ("postgres", "sqlite")):
                batch = rows(args.rows, f"{kind}{run}")
                kw = {"flush_interval_s": 0.05, "batch_size": args.batch, "max_buffer_rows": args.rows * 2}
                if kind == "sqlite":
                    log: RequestLog = RequestLog(str(tmp / f"log{run}.db"), **kw)
                else:
                    loc = register(server.createdb(f"bench{run}"))
                    database(loc).run(lambda c: c.fetchval("SELECT 1"))  # connect + migrate outside the timing
                    log = PgRequestLog(loc, spill_path=str(tmp / "pg"), **kw)
                rate = asyncio.run(run_once(log, batch))
                out[kind].append(rate)
                print(f"run {run + 1} {kind:8s} {rate:10,.0f} rows/s", flush=True)
    finally:
        server.destroy()
    for kind, rates in out.items():
        print(f"{kind:8s} median {statistics.median(rates):10,.0f} rows/s  (runs: "
              f"{', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
