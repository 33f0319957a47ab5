"""Start-up time and memory under sustained load, for issue targets that wrk does not measure.

Starts ../shared/bench/fake_upstream.py and `modelyard serve --config bench/gateway.yaml` (pinned
to CPU 1 when taskset exists), times spawn → first 200, then sends N requests (default 100k,
50 concurrent, half streamed) and samples the gateway's RSS every 10k requests.

    .venv/bin/python bench/soak_rss.py [--requests 100000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(os.environ.get("HARNESS", ROOT.parent / "shared" / "bench"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident set of the process and its children (worker processes), in MiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def pinned(cmd: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


async def wait_first_200(url: str, body: dict, headers: dict, timeout: float = 30) -> float:
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        while time.perf_counter() - t0 < timeout:
            try:
                async with s.post(url, json=body, headers=headers) as r:
                    if r.status == 200:
                        await r.read()
                        return time.perf_counter() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
    raise SystemExit("gateway never answered 200")


async def load(url: str, headers: dict, n: int, conc: int, pid: int) -> list[tuple[int, float]]:
    samples = [(0, rss_mb(pid))]
    done = 0
    errors = 0
    bodies = [
        {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def worker() -> None:
            nonlocal done, errors
            while done < n:
                done += 1
                i = done
                async with s.post(url, json=bodies[i % 2], headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                if i % 10_000 == 0:
                    samples.append((i, rss_mb(pid)))
        await asyncio.gather(*(worker() for _ in range(conc)))
    if errors:
        print(f"errors: {errors}", file=sys.stderr)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--config", default=str(ROOT / "bench" / "gateway.yaml"))
    a = ap.parse_args()
    up_port, gw_port = free_port(), free_port()
    env = {**os.environ, "UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1", "BENCH_KEY": "bench-key",
           "BENCH_OUT": "/tmp"}
    upstream = subprocess.Popen(pinned([sys.executable, str(HARNESS / "fake_upstream.py"), str(up_port)], "0"),
                                env=env, start_new_session=True)
    time.sleep(0.5)
    exe = str(Path(sys.executable).parent / "modelyard")
    t_spawn = time.perf_counter()
    gw = subprocess.Popen(pinned([exe, "serve", "--config", a.config, "--port", str(gw_port)], "1"), env=env,
                          stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
    headers = {"authorization": "Bearer bench-key"}
    try:
        first = asyncio.run(wait_first_200(url, {"model": "bench-model", "messages": [
            {"role": "user", "content": "hi"}]}, headers))
        startup = time.perf_counter() - t_spawn
        print(f"start-up to first 200: {startup:.2f} s (ready-poll {first:.2f} s)")
        t0 = time.perf_counter()
        samples = asyncio.run(load(url, headers, a.requests, a.concurrency, gw.pid))
        dt = time.perf_counter() - t0
        print(f"{a.requests} requests (half streamed) in {dt:.1f} s = {a.requests / dt:.0f} req/s (loadgen-bound)")
        print("requests  RSS MiB")
        for i, mb in samples:
            print(f"{i:>8}  {mb:7.1f}")
    finally:
        for p in (gw, upstream):
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=20)


if __name__ == "__main__":
    main()
