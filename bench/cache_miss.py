"""CPU per request of the exact cache's miss path, in process: two gateways on bench/gateway.yaml
(request log, metrics, the bench-model group), one with `cache: off`, one with `cache: exact`,
against ../shared/bench's fake upstream over real HTTP, driven through `Gateway.chat` by
`--concurrency` tasks with a new user turn per request (every exact lookup misses and stores).
Rounds alternate off / exact; the figure is process CPU time (every thread: the event loop, the
client's I/O threads, the request log writer) per request, which stays comparable on a loaded box.
`--profile` prints the cProfile functions whose total time differs most between the two.

    PYTHONPATH=src python bench/cache_miss.py [--requests 3000] [--rounds 6] [--concurrency 50] [--backend sqlite|redis]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import count
from pathlib import Path

from modelyard.cli.serve import GC_THRESHOLDS
from modelyard.gateway import Gateway
from modelyard.loader import load_config
from modelyard.types import ChatRequest, Message

ROOT = Path(__file__).resolve().parent.parent


def harness() -> Path:
    for d in (ROOT.parent / "shared" / "bench", ROOT.parent.parent / "shared" / "bench"):
        if (d / "fake_upstream.py").exists():
            return d
    sys.exit("needs ../shared/bench/fake_upstream.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(gw: Gateway, n: int, concurrency: int, seq: count[int], tag: str) -> tuple[float, float]:
    """CPU seconds per request over `n` new requests: the whole process's, and the event loop's."""
    left = iter(range(n))

    async def worker() -> None:
        for _ in left:
            req = ChatRequest(model="bench-model", messages=[Message("user", f"Say hello. {tag} {next(seq)}")],
                              max_tokens=16)
            await gw.chat(req)

    t0, l0 = time.process_time(), time.thread_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - t0) / n, (time.thread_time() - l0) / n


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--backend", choices=("memory", "sqlite", "redis"), default="memory",
                    help="the exact cache's backend (redis: a redis-server of its own, on loopback)")
    ap.add_argument("--profile", action="store_true", help="cProfile both (slower: compare the shapes)")
    ap.add_argument("--dump", metavar="DIR", help="with --profile: also write DIR/off.prof and DIR/exact.prof")
    args = ap.parse_args()
    port = free_port()
    up = subprocess.Popen([sys.executable, str(harness() / "fake_upstream.py"), str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp(prefix="cache-miss-")
    procs = [up]
    if args.backend == "redis":
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                                       "--dir", tmp], stdout=subprocess.DEVNULL))
    gws = {}
    try:
        for mode in ("off", "exact"):
            os.makedirs(f"{tmp}/{mode}")
            env = {**os.environ, "UPSTREAM_URL": f"http://127.0.0.1:{port}/v1", "BENCH_CACHE": mode,
                   "BENCH_OUT": f"{tmp}/{mode}"}
            config = load_config(ROOT / "bench" / "gateway.yaml", environ=env)
            config.cache.backend, config.cache.path = args.backend, f"{tmp}/{mode}/cache.db"
            if args.backend == "redis":
                config.cache.url = f"redis://127.0.0.1:{rport}/0"
            gws[mode] = Gateway(config, source="bench")
            await gws[mode].start()
        await asyncio.sleep(0.5)
        gc.freeze()  # as `modelyard serve` does once started (cli/serve.py)
        gc.set_threshold(*GC_THRESHOLDS)
        seq = count()
        tag = os.urandom(4).hex()
        for gw in gws.values():  # warm-up: connections, first-call imports
            await run(gw, 200, args.concurrency, seq, tag)
        if args.profile:
            profiles = {m: cProfile.Profile(time.thread_time) for m in gws}  # the loop's CPU time
            for _ in range(args.rounds):
                for m, gw in gws.items():
                    profiles[m].enable()
                    await run(gw, args.requests, args.concurrency, seq, tag)
                    profiles[m].disable()
            report(profiles, args.rounds * args.requests)
            for m, p in profiles.items():
                if args.dump:
                    p.dump_stats(f"{args.dump}/{m}.prof")
            return
        cpu: dict[str, list[tuple[float, float]]] = {m: [] for m in gws}
        for r in range(args.rounds):
            for m, gw in gws.items():
                cpu[m].append(await run(gw, args.requests, args.concurrency, seq, tag))
            print(f"round {r + 1}: " + "  ".join(f"{m} {cpu[m][-1][0] * 1e6:.1f} (loop {cpu[m][-1][1] * 1e6:.1f})"
                                                 for m in gws) + " µs CPU/request", flush=True)
        for i, what in ((0, "process"), (1, "event loop")):
            off, exact = (statistics.median(c[i] * 1e6 for c in cpu[m]) for m in ("off", "exact"))
            pairs = statistics.median((e[i] - o[i]) * 1e6 for o, e in zip(cpu["off"], cpu["exact"], strict=True))
            print(f"{what}: off {off:.1f}, exact (every request a miss) {exact:.1f} µs CPU/request; "
                  f"miss path {pairs:+.1f} µs (median of paired rounds); load {os.getloadavg()[0]:.2f}")
    finally:
        for gw in gws.values():
            await gw.close()
        for p in procs:
            p.terminate()


def report(profiles: dict[str, cProfile.Profile], n: int) -> None:
    """The functions whose own time (tottime) and total time per request differ most."""
    stats = {m: pstats.Stats(p).stats for m, p in profiles.items()}  # type: ignore[attr-defined]

    def per(m: str, idx: int) -> dict[str, float]:
        return {f"{Path(k[0]).name}:{k[1]} {k[2]}": v[idx] / n * 1e6 for k, v in stats[m].items()}

    for title, idx in (("own time", 2), ("total time", 3)):
        off, exact = per("off", idx), per("exact", idx)
        print(f"\n{title}, µs/request: off, exact, difference")
        diffs = sorted(set(off) | set(exact), key=lambda k: -(exact.get(k, 0) - off.get(k, 0)))
        for k in diffs[:25]:
            print(f"{off.get(k, 0):8.2f} {exact.get(k, 0):8.2f} {exact.get(k, 0) - off.get(k, 0):+8.2f}  {k}")
        print(f"sum {sum(off.values()):.1f} {sum(exact.values()):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
