"""Scale-out figures: req/s of `modelyard serve --workers 1/2/4` with `state: memory` and `state: redis://`,
and the cost of the Redis round trip on the hot path (admit + settle in process, memory vs Redis).

    .venv/bin/python bench/scale_bench.py                    # both parts
    .venv/bin/python bench/scale_bench.py --part admit       # in process: admit+settle µs, p50 of the round trip
    .venv/bin/python bench/scale_bench.py --part serve -d 10 -c 50 --workers 1,2,4 --reps 2

The upstream is the sim fleet with zero latency (in process), the client wrk; every request carries a
virtual key with a budget and an rpm limit, so admission runs its full path. A redis-server is started
in a temporary directory (no persistence) for the Redis runs. Runs alternate memory/redis per rep and
the medians are printed (docs/BENCHMARKS.md, "Scale-out").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

KEY = "sk-bench-scale-0123456789"
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
wrk.body = '{"model":"sim/fast","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
function done(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f errors=%d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, summary.errors.status + summary.errors.connect + summary.errors.timeout))
end
""".replace("KEY", KEY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="modelyard-bench-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        time.sleep(0.3)

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "FLUSHALL"], check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def config(state: str, log: str) -> dict[str, Any]:
    return {"state": state, "server": {"master_key": "env:BENCH_MASTER", "request_log": {"path": log}},
            "telemetry": {"log_requests": False},
            "deployments": {"sim/fast": {"provider": "sim", "model": "sim/fast"}},
            "keys": {"bench": {"key": "env:BENCH_KEY", "budget_usd": 1e6, "budget_period": "total", "rpm": 10**8}}}


# --- in process: admit + settle --------------------------------------------------------------------------
async def admit_loop(state: str, n: int) -> tuple[float, float]:
    """(mean µs of admit+settle, p50 µs of admit alone) over `n` requests of a keyed caller."""
    os.environ.update(BENCH_KEY=KEY, BENCH_MASTER="sk-bench-master-0123456789")
    from modelyard.gateway import Gateway
    from modelyard.loader import parse_config
    from modelyard.types import ChatRequest, Message

    tmp = tempfile.mkdtemp()
    gw = Gateway(parse_config(config(state, f"{tmp}/log.db"), "bench.yaml"), request_log=False)
    await gw.start()
    try:
        from modelyard.accounting.keys import build_caller, declared_keys

        caller = build_caller(declared_keys(gw.config)[0][0], {}, {})
        route = gw.routes["sim/fast"]
        req = ChatRequest(model="sim/fast", messages=[Message(role="user", content="Say hello.")], max_tokens=16)
        req.caller = caller
        acct = gw.accounting
        for _ in range(200):
            (await acct.admit(req, route)).settle("sim/fast", None, 1e-6)
        admits: list[float] = []
        t0 = time.perf_counter()
        for _ in range(n):
            a0 = time.perf_counter()
            adm = await acct.admit(req, route)
            admits.append(time.perf_counter() - a0)
            adm.settle("sim/fast", None, 1e-6)
        total = time.perf_counter() - t0
    finally:
        await gw.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return total / n * 1e6, statistics.median(admits) * 1e6


def part_admit(n: int, reps: int) -> None:
    redis = Redis()
    try:
        rows: dict[str, list[tuple[float, float]]] = {"memory": [], "redis": []}
        for _ in range(reps):
            for kind, url in (("memory", "memory"), ("redis", redis.url)):
                rows[kind].append(asyncio.run(admit_loop(url, n)))
                redis.flush()
    finally:
        redis.stop()
    for kind, vals in rows.items():
        print(f"admit+settle {kind:6s}: mean {statistics.median(v[0] for v in vals):7.1f} µs/request, "
              f"admit p50 {statistics.median(v[1] for v in vals):7.1f} µs  (median of {reps})")
    extra = statistics.median(v[1] for v in rows["redis"]) - statistics.median(v[1] for v in rows["memory"])
    print(f"added p50 of the Redis round trip on the hot path: {extra:.1f} µs")


# --- modelyard serve under wrk -----------------------------------------------------------------------------
def serve_run(state: str, workers: int, duration: int, conc: int, tmp: Path) -> tuple[float, float]:
    port = free_port()
    cfg = tmp / f"gw-{port}.yaml"
    cfg.write_text(yaml.safe_dump(config(state, str(tmp / f"log-{port}.db"))))
    env = {**os.environ, "BENCH_KEY": KEY, "BENCH_MASTER": "sk-bench-master-0123456789",
           "MODELYARD_SIM_ZERO_LATENCY": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(cfg), "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.2)
        lua = tmp / "post.lua"
        lua.write_text(LUA)
        subprocess.run(["wrk", "-t", "2", "-c", str(conc), "-d", "2", "-s", str(lua), url + "/v1/chat/completions"],
                       capture_output=True, check=True)  # warm-up
        out = subprocess.run(["wrk", "-t", "2", "-c", str(conc), "-d", str(duration), "-s", str(lua),
                              url + "/v1/chat/completions"], capture_output=True, text=True, check=True).stdout
        m = re.search(r"RESULT rps=([\d.]+) p50_ms=([\d.]+) errors=(\d+)", out)
        if m is None or int(m.group(3)):
            raise RuntimeError(f"wrk: {out}")
        return float(m.group(1)), float(m.group(2))
    finally:
        os.killpg(proc.pid, 2)
        proc.wait(timeout=30)


def part_serve(workers: list[int], duration: int, conc: int, reps: int) -> None:
    redis = Redis()
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-bench-scale-"))
    try:
        print(f"{'workers':>7} {'state':>6} {'req/s':>8} {'p50 ms':>7}   (c={conc}, {duration} s, median of {reps})")
        for w in workers:
            runs: dict[str, list[tuple[float, float]]] = {"memory": [], "redis": []}
            for _ in range(reps):
                for kind, url in (("memory", "memory"), ("redis", redis.url)):
                    runs[kind].append(serve_run(url, w, duration, conc, tmp))
                    redis.flush()
            for kind, vals in runs.items():
                print(f"{w:>7} {kind:>6} {statistics.median(v[0] for v in vals):8.0f} "
                      f"{statistics.median(v[1] for v in vals):7.2f}", flush=True)
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("admit", "serve", "all"), default="all")
    ap.add_argument("-n", type=int, default=5000, help="admit part: requests per run")
    ap.add_argument("-d", "--duration", type=int, default=10, help="serve part: seconds per run")
    ap.add_argument("-c", "--concurrency", type=int, default=50)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    if a.part in ("admit", "all"):
        part_admit(a.n, a.reps)
    if a.part in ("serve", "all"):
        part_serve([int(w) for w in a.workers.split(",")], a.duration, a.concurrency, a.reps)


if __name__ == "__main__":
    main()
