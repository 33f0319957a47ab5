"""What the execution modes cost the gateway itself: in-process, zero-latency sim deployments, no
request log, so every microsecond is orchestration (sub-requests, tasks, accounting, metadata),
not upstream time. Also the price of the mode check on the single-request path.

    .venv/bin/python bench/modes.py [--n 2000]

Results and the exact command go in docs/BENCHMARKS.md ("Execution modes").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import timeit

os.environ["MODELYARD_SIM_ZERO_LATENCY"] = "1"

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.modes import dispatch as modes
from modelyard.types import ChatRequest, Message

CONFIG = {
    "deployments": {name: {"provider": "sim", "model": "sim/fast", "sim": {"answers": {"spam": reply}}}
                    for name, reply in (("a", "Spam."), ("b", "spam"), ("c", "Not spam"))},
    "model_groups": {"trio": {"deployments": ["a", "b", "c"]}},
    "pipelines": {"three": {"steps": [{"name": "s1", "model": "a", "prompt": "{{ input }}"},
                                      {"parallel": [{"name": "s2", "model": "b", "prompt": "{{ s1 }}"},
                                                    {"name": "s3", "model": "c", "prompt": "{{ s1 }}"}]},
                                      {"name": "s4", "model": "a", "prompt": "{{ s2 }} {{ s3 }}"}]}},
    "server": {"request_log": {"enabled": False}},
}
TEXT = "Is this spam? 'You won a free prize, click now'"
CASES: list[tuple[str, str, dict, int]] = [  # name, model, modelyard options, sub-calls
    ("single", "a", {}, 1),
    ("race", "trio", {"mode": "race"}, 3),
    ("all", "trio", {"mode": "all"}, 3),
    ("vote", "trio", {"mode": "vote", "normalize": "label", "labels": ["spam", "not spam"]}, 3),
    ("judge", "trio", {"mode": "judge", "judge": "a"}, 4),
    ("fuse", "trio", {"mode": "fuse", "aggregator": "a"}, 4),
    ("pipeline (4 steps)", "pipeline/three", {}, 4),
]


async def run(n: int) -> None:
    gw = Gateway(parse_config(CONFIG, "bench"), source="bench", request_log=False)
    await gw.start()
    results = {}
    for name, model, opts, calls in CASES:
        def make(model: str = model, opts: dict = opts) -> ChatRequest:
            return ChatRequest(model=model, messages=[Message("user", TEXT)], metadata=dict(opts))
        for _ in range(200):  # warm up
            await gw.chat(make())
        t0 = time.perf_counter()
        for _ in range(n):
            await gw.chat(make())
        us = (time.perf_counter() - t0) / n * 1e6
        results[name] = (us, calls)
    await gw.close()
    print(f"{'case':<20}{'µs/request':>12}{'sub-calls':>11}{'µs/sub-call':>13}")
    for name, (us, calls) in results.items():
        print(f"{name:<20}{us:>12.1f}{calls:>11}{us / calls:>13.1f}")

    req = ChatRequest(model="a", messages=[Message("user", TEXT)])
    pipelines, direct = gw.pipelines, modes.DIRECT
    per = min(timeit.repeat(lambda: req.model in pipelines or (req.metadata and req.metadata.get("mode") not in direct),
                            number=1_000_000, repeat=5))
    print(f"\nmode check on the single path (no metadata): {per * 1000:.1f} ns/request")
    req.metadata = {"tags": ["x"]}
    per = min(timeit.repeat(lambda: req.model in pipelines or (req.metadata and req.metadata.get("mode") not in direct),
                            number=1_000_000, repeat=5))
    print(f"mode check on the single path (routing hints, no mode): {per * 1000:.1f} ns/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(run(parser.parse_args().n))
