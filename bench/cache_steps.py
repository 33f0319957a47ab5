"""Instructions per step of the exact cache's miss path, counted by valgrind: a count that does not
move with the load of a shared box (timings there move by 2-3x), so small changes can be compared.

Steps, each on a fresh request and an OpenAI-format answer parsed as the gateway parses it:
`plan` (policy + exact key), `lookup` (a miss in the memory backend), `store` (encode + put, the
LRU bound kept), and `choices` (building the answer's Choice objects, which the gateway skips
unless something reads them). Each step runs N times, the measured one 2N times; the difference
of the two counts / N is the step's cost. The cyclic GC is off while steps run (its passes depend
on what else is alive, not on the step).

    PYTHONPATH=src python bench/cache_steps.py            # every step (needs valgrind; ~1 min a step)
    PYTHONPATH=src python bench/cache_steps.py --step plan --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
from pathlib import Path

STEPS = ("plan", "lookup", "store", "choices")
BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1796525149,"model":"bench-model",'
        b'"system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant","content":'
        b'"Hello from the fake upstream."},"logprobs":null,"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}')


def run_steps(n: int, twice: str) -> None:
    """Every step n times, `twice` 2n times (run under valgrind by `main`)."""
    from modelyard.gateway import Gateway
    from modelyard.loader import load_config
    from modelyard.providers.openai import from_wire
    from modelyard.types import ChatRequest, Message

    env = {**os.environ, "UPSTREAM_URL": "http://127.0.0.1:9/v1", "BENCH_CACHE": "exact", "BENCH_OUT": "/tmp"}
    gw = Gateway(load_config(Path(__file__).with_name("gateway.yaml"), environ=env), source="bench",
                 request_log=False)
    cache, dep = gw.cache, gw.deployments["upstream"]
    cache.backend.max_entries = n  # (a full cache: stores evict, as in a long-running process)
    m = 4 * n
    reqs = [ChatRequest(model="bench-model", messages=[Message("user", f"Say hello. {i}")], max_tokens=16)
            for i in range(m)]
    answers = [from_wire(BODY, dep) for _ in range(m)]
    for a in answers:
        a.deployment = "upstream"

    def count(step: str) -> int:
        return 2 * n if step == twice else n

    async def steps() -> None:
        for i in range(count("plan")):
            cache.plan("bench-model", reqs[i])
        looks = [cache.plan("bench-model", r) for r in reqs]
        gc.collect()
        gc.freeze()
        gc.disable()
        for i in range(count("lookup")):
            await cache.lookup(looks[i])
        for i in range(count("store")):
            await cache.store(looks[i], answers[i])
        for i in range(count("choices")):
            answers[m - 1 - i].choices  # noqa: B018 - the property builds them

    gc.freeze()
    gc.disable()
    asyncio.run(steps())


def instructions(n: int, twice: str) -> int:
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, __file__, "--inner", twice, "--n", str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    found = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if found is None:
        sys.exit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", choices=STEPS, action="append", help="one step (repeatable); default: all")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner is not None:
        run_steps(args.n, args.inner)
        return
    base = instructions(args.n, "none")
    total = 0
    for step in args.step or STEPS:
        per = (instructions(args.n, step) - base) // args.n
        total += per if step != "choices" else 0
        print(f"{step:8s} {per:8,d} instructions", flush=True)
    if not args.step:
        print(f"miss     {total:8,d} instructions (plan + lookup + store)")


if __name__ == "__main__":
    main()
