"""Scale-out figures: req/s of `modelyard serve --workers 1/2/4` with `state: memory` and `state: redis://`,
and the cost of the Redis round trip on the hot path (admit + settle in process, memory vs Redis).

    .venv/bin/python bench/scale_bench.py                    # both parts, then the markdown table
    .venv/bin/python bench/scale_bench.py --part admit       # in process: admit+settle µs, PING vs ADMIT p50,
                                                             # Redis round trips per request (counted)
    .venv/bin/python bench/scale_bench.py --part serve -d 10 -c 50 --workers 1,2,4 --reps 2

The upstream is the sim fleet with zero latency (in process), the client wrk; every request carries a
virtual key with a budget and an rpm limit, so admission runs its full path. A redis-server is started
in a temporary directory (no persistence) for the Redis runs. Runs alternate memory/redis per rep and
the medians are printed, with the load average, as a markdown table (docs/BENCHMARKS.md, "Scale-out").
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import hashlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

KEY = "sk-bench-scale-0123456789"
MASTER = "sk-bench-master-0123456789"
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
wrk.body = '{"model":"sim/fast","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
function done(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f requests=%d errors=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.timeout))
end
""".replace("KEY", KEY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


class Redis:
    """A throw-away redis-server; stopped at exit even when the bench fails."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="modelyard-bench-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.stop)
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return r.stdout.strip()

    def flush(self) -> None:
        self.cli("FLUSHALL")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Monitor:
    """Every command Redis runs while active (MONITOR, on its own connection and thread), counted by
    name; EVALSHA is split by script (`ADMIT`, `BATCH`). MONITOR slows Redis: count, never time."""

    def __init__(self, port: int, scripts: dict[str, str]) -> None:
        import redis

        self.r = redis.Redis(port=port)
        self.scripts = scripts
        self.counts: Counter[str] = Counter()
        self._mon = self.r.monitor()
        self._mon.__enter__()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                line = self._mon.next_command()
            except Exception:
                return
            name, _, rest = line["command"].partition(" ")
            name = name.upper()
            if name == "EVALSHA":
                name = "EVALSHA " + self.scripts.get(rest[:40], rest[:8])
            self.counts[("in scripts: " if line["client_type"] == "lua" else "") + name] += 1

    def stop(self) -> Counter[str]:
        time.sleep(0.5)  # the background flush after the last request, and MONITOR's own lag
        self._stop = True
        self.r.execute_command("PING")  # one more line so the reader wakes and sees the flag
        self._thread.join(timeout=5)
        return self.counts


def script_names() -> dict[str, str]:
    """SHA1 of each state script (what EVALSHA names) -> its name."""
    from modelyard.state.scripts import ADMIT, BATCH

    return {hashlib.sha1(src.encode()).hexdigest(): name for src, name in ((ADMIT, "ADMIT"), (BATCH, "BATCH"))}


def per_request(counts: Counter[str], n: int) -> str:
    """Commands sent by clients per request, then the ones the scripts ran inside Redis."""
    skip = ("PING", "MONITOR")
    sent = [(k, c) for k, c in counts.most_common() if k not in skip and not k.startswith("in scripts: ")]
    inner = sum(c for k, c in counts.items() if k.startswith("in scripts: "))
    return ", ".join(f"{k} {c / n:.3f}" for k, c in sent) + f"; run inside the scripts: {inner / n:.1f} commands"


def config(state: str, log: str) -> dict[str, Any]:
    return {"state": state, "server": {"master_key": "env:BENCH_MASTER", "request_log": {"path": log}},
            "telemetry": {"log_requests": False},
            "deployments": {"sim/fast": {"provider": "sim", "model": "sim/fast"}},
            "keys": {"bench": {"key": "env:BENCH_KEY", "budget_usd": 1e6, "budget_period": "total", "rpm": 10**8}}}


# --- in process: admit + settle --------------------------------------------------------------------------
async def admit_loop(state: str, n: int, redis: Redis | None = None) -> dict[str, float]:
    """mean µs of admit+settle and p50 µs of admit over `n` requests of a keyed caller; over Redis also
    the p50 of a bare PING and of the ADMIT script alone (same client), and the round trips counted."""
    os.environ.update(BENCH_KEY=KEY, BENCH_MASTER=MASTER)
    from modelyard.accounting.keys import build_caller, declared_keys
    from modelyard.gateway import Gateway
    from modelyard.loader import parse_config
    from modelyard.types import ChatRequest, Message

    tmp = tempfile.mkdtemp()
    gw = Gateway(parse_config(config(state, f"{tmp}/log.db"), "bench.yaml"), request_log=False)
    await gw.start()
    out: dict[str, float] = {}
    try:
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
        out["mean"] = (time.perf_counter() - t0) / n * 1e6
        out["admit_p50"] = statistics.median(admits) * 1e6
        store = gw.resilience.store
        if redis is not None and getattr(store, "shared", False):
            out.update(await _isolated(store, n))
            out.update(await _counted(acct, req, route, store, redis, min(n, 2000)))
    finally:
        await gw.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


async def _isolated(store: Any, n: int) -> dict[str, float]:
    """p50 µs of a bare PING and of the ADMIT script call alone (one rate window + one budget), and the
    mean µs Redis itself spent in the script (INFO commandstats: what the round trip does not explain)."""
    await store.r.config_resetstat()
    pings: list[float] = []
    scripts: list[float] = []
    rates = [("rate:bench-iso", 10**8, 0, 16)]
    budgets = [("key:bench-iso", "total", 1e6, 1e-6, "0", 0)]
    for i in range(n):
        t0 = time.perf_counter()
        await store.r.ping()
        pings.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = await store.admit(rates, budgets, f"iso{i}")
        scripts.append(time.perf_counter() - t0)
        assert res[0] == "ok", res
    stats = await store.r.info("commandstats")
    return {"ping_p50": statistics.median(pings) * 1e6, "script_p50": statistics.median(scripts) * 1e6,
            "script_server": float(stats["cmdstat_evalsha"]["usec_per_call"])}


async def _counted(acct: Any, req: Any, route: Any, store: Any, redis: Redis, n: int) -> dict[str, float]:
    """Round trips per request: started by the request (client side, per task) and run by Redis
    (MONITOR, by command); everything the background sync task sends is counted apart."""
    sync_task = store._task
    counts = {"request": 0, "background": 0}
    r = store.r
    real_exec, real_pipe = r.execute_command, r.pipeline

    def who() -> str:
        return "background" if asyncio.current_task() is sync_task else "request"

    async def execute_command(*a: Any, **k: Any) -> Any:
        counts[who()] += 1
        return await real_exec(*a, **k)

    def pipeline(*a: Any, **k: Any) -> Any:
        counts[who()] += 1  # a pipeline is one round trip (its commands go in one write)
        return real_pipe(*a, **k)

    mon = Monitor(redis.port, script_names())
    r.execute_command, r.pipeline = execute_command, pipeline
    try:
        for _ in range(n):
            (await acct.admit(req, route)).settle("sim/fast", None, 1e-6)
        await asyncio.sleep(0.3)  # the last settles' flush
    finally:
        r.execute_command, r.pipeline = real_exec, real_pipe
    server = mon.stop()
    print(f"  redis commands per request (MONITOR, {n} requests): {per_request(server, n)}")
    return {"rt_request": counts["request"] / n, "rt_background": counts["background"] / n,
            "admit_calls": server["EVALSHA ADMIT"] / n}


def part_admit(n: int, reps: int) -> dict[str, float]:
    print(f"## admit + settle in process, n={n}, {reps} reps ({load()})", flush=True)
    redis = Redis()
    rows: dict[str, list[dict[str, float]]] = {"memory": [], "redis": []}
    try:
        for _ in range(reps):
            for kind, url in (("memory", "memory"), ("redis", redis.url)):
                rows[kind].append(asyncio.run(admit_loop(url, n, redis)))
                redis.flush()
    finally:
        redis.stop()

    def med(kind: str, field: str) -> float:
        return statistics.median(v[field] for v in rows[kind])

    res = {f"{kind}_{f}": med(kind, f) for kind in rows for f in ("mean", "admit_p50")}
    fields = ("ping_p50", "script_p50", "script_server", "rt_request", "rt_background", "admit_calls")
    res.update({f: med("redis", f) for f in fields})
    res["added_p50"] = res["redis_admit_p50"] - res["memory_admit_p50"]
    for kind in rows:
        print(f"admit+settle {kind:6s}: mean {res[kind + '_mean']:7.1f} µs/request, "
              f"admit p50 {res[kind + '_admit_p50']:7.1f} µs  (median of {reps})")
    print(f"added p50 of the Redis round trip on the hot path: {res['added_p50']:.1f} µs "
          f"(bare PING p50 {res['ping_p50']:.1f} µs, ADMIT script call p50 {res['script_p50']:.1f} µs, of which "
          f"{res['script_server']:.1f} µs inside Redis)")
    print(f"Redis round trips per request: {res['rt_request']:.3f} awaited by the request "
          f"(ADMIT calls {res['admit_calls']:.3f}), {res['rt_background']:.3f} from the background sync", flush=True)
    return res


# --- modelyard serve under wrk -----------------------------------------------------------------------------
def wrk(url: str, lua: Path, conc: int, duration: int) -> tuple[float, float, int]:
    cmd = ["wrk", "-t", "2", "-c", str(conc), "-d", str(duration), "--timeout", "10s", "-s", str(lua),
           url + "/v1/chat/completions"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"RESULT rps=([\d.]+) p50_ms=([\d.]+) requests=(\d+) errors=(\d+)", out)
    if m is None or int(m.group(4)):
        raise RuntimeError(f"wrk: {out}")
    return float(m.group(1)), float(m.group(2)), int(m.group(3))


class Serve:
    """`modelyard serve --workers N` on a free port, in its own process group, ready when /ready is 200."""

    def __init__(self, state: str, workers: int, tmp: Path) -> None:
        port = free_port()
        cfg = tmp / f"gw-{port}.yaml"
        cfg.write_text(yaml.safe_dump(config(state, str(tmp / f"log-{port}.db"))))
        env = {**os.environ, "BENCH_KEY": KEY, "BENCH_MASTER": MASTER, "MODELYARD_SIM_ZERO_LATENCY": "1"}
        self.log = tmp / f"gw-{port}.log"
        with self.log.open("w") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelyard.cli", "serve", "--config", str(cfg), "--port", str(port),
                 "--workers", str(workers)], env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"gateway did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 2)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
                print(f"  (gateway {self.url} did not stop on SIGINT within 30 s: killed)", file=sys.stderr)


def serve_run(state: str, workers: int, duration: int, conc: int, tmp: Path) -> tuple[float, float]:
    gw = Serve(state, workers, tmp)
    try:
        lua = tmp / "post.lua"
        lua.write_text(LUA)
        wrk(gw.url, lua, conc, 2)  # warm-up
        rps, p50, _ = wrk(gw.url, lua, conc, duration)
        return rps, p50
    finally:
        gw.stop()


def serve_count(redis: Redis, tmp: Path, n: int = 500) -> None:
    """Redis commands per HTTP request through `modelyard serve` (one worker, MONITOR on): `n` requests
    one after another, so every request counted has finished (wrk leaves some in flight at its end)."""
    gw = Serve(redis.url, 1, tmp)
    body = {"model": "sim/fast", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
    try:
        with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as c:
            c.post("/v1/chat/completions", json=body).raise_for_status()  # (seeds the budget's period)
            mon = Monitor(redis.port, script_names())
            for _ in range(n):
                c.post("/v1/chat/completions", json=body).raise_for_status()
            counts = mon.stop()
    finally:
        gw.stop()
    print(f"redis commands per HTTP request (serve, MONITOR, {n} requests): {per_request(counts, n)}", flush=True)


def part_serve(workers: list[int], duration: int, conc: int, reps: int) -> dict[tuple[int, str], tuple[float, float]]:
    print(f"## modelyard serve under wrk, c={conc}, {duration} s, {reps} reps ({load()})", flush=True)
    redis = Redis()
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-bench-scale-"))
    res: dict[tuple[int, str], tuple[float, float]] = {}
    try:
        serve_count(redis, tmp)
        redis.flush()
        print(f"{'workers':>7} {'state':>6} {'req/s':>8} {'p50 ms':>7}   (median of {reps})")
        for w in workers:
            runs: dict[str, list[tuple[float, float]]] = {"memory": [], "redis": []}
            for _ in range(reps):
                for kind, url in (("memory", "memory"), ("redis", redis.url)):
                    runs[kind].append(serve_run(url, w, duration, conc, tmp))
                    redis.flush()
            for kind, vals in runs.items():
                res[(w, kind)] = (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
                print(f"{w:>7} {kind:>6} {res[(w, kind)][0]:8.0f} {res[(w, kind)][1]:7.2f}   ({load()})", flush=True)
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def table(admit: dict[str, float] | None, serve: dict[tuple[int, str], tuple[float, float]], a: Any) -> None:
    """The markdown block docs/BENCHMARKS.md holds, from this run."""
    print(f"\n<!-- python bench/scale_bench.py --part {a.part} -n {a.n} -d {a.duration} -c {a.concurrency} "
          f"--workers {a.workers} --reps {a.reps}; {load()} at the end -->")
    if serve:
        print("\n| workers | state: memory req/s | state: redis req/s | memory p50 ms | redis p50 ms |")
        print("|---:|---:|---:|---:|---:|")
        for w in sorted({w for w, _ in serve}):
            m, r = serve[(w, "memory")], serve[(w, "redis")]
            print(f"| {w} | {m[0]:.0f} | {r[0]:.0f} | {m[1]:.2f} | {r[1]:.2f} |")
    if admit:
        print("\n| in process (µs, p50 unless said) | memory | redis |")
        print("|---|---:|---:|")
        print(f"| admit (rate window + budget reservation) | {admit['memory_admit_p50']:.1f} | "
              f"{admit['redis_admit_p50']:.1f} |")
        print(f"| admit + settle, mean | {admit['memory_mean']:.1f} | {admit['redis_mean']:.1f} |")
        print(f"| bare PING, same client | | {admit['ping_p50']:.1f} |")
        print(f"| ADMIT script call alone | | {admit['script_p50']:.1f} |")
        print(f"| of which inside Redis (commandstats, mean) | | {admit['script_server']:.1f} |")
        print(f"| added p50 on the hot path (redis − memory admit) | | {admit['added_p50']:.1f} |")
        print(f"| Redis round trips awaited per request | 0 | {admit['rt_request']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("admit", "serve", "all"), default="all")
    ap.add_argument("-n", type=int, default=5000, help="admit part: requests per run")
    ap.add_argument("-d", "--duration", type=int, default=10, help="serve part: seconds per run")
    ap.add_argument("-c", "--concurrency", type=int, default=50)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    for tool in ("redis-server", "redis-cli") + (("wrk",) if a.part != "admit" else ()):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {'wrk' if tool == 'wrk' else 'redis-server'})")
    admit = part_admit(a.n, a.reps) if a.part in ("admit", "all") else None
    serve = part_serve([int(w) for w in a.workers.split(",")], a.duration, a.concurrency, a.reps) \
        if a.part in ("serve", "all") else {}
    table(admit, serve, a)


if __name__ == "__main__":
    main()
