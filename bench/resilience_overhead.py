"""What the resilience layer costs a request that does not fail, measured piece by piece in-process
(uvloop, best of several runs):

- the bookkeeping of one successful call: policy lookup, attempt plan, breaker acquire/release,
  health started/finished/ok (EWMA, samples, breaker window);
- a stream's guard: set-up and tear-down, and the cost per chunk (idle watch, health), against
  iterating the upstream's chunks directly;
- the hot path's timer policy: `asyncio.timeout_at` is what a call would pay if it always armed its
  own timer (it does not, when the adapter enforces the limit itself).

    .venv/bin/python bench/resilience_overhead.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import uvloop

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.resilience.attempt_plan import AttemptPlan
from modelyard.resilience.timeouts import GuardedStream
from modelyard.types import ChatRequest, Message, RouteDecision

N = 50_000
CHUNKS = 20


async def best(fn: Callable[[], Coroutine[Any, Any, None]], n: int, reps: int = 7) -> float:
    """Best µs per iteration of `fn` (which runs n iterations)."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return min(out)


async def chunks(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def main() -> None:
    cfg = parse_config({"deployments": {"a": {"provider": "openai", "model": "m", "api_base": "http://127.0.0.1:9/v1"},
                                        "b": {"provider": "openai", "model": "m", "api_base": "http://127.0.0.1:9/v1"}},
                        "model_groups": {"g": {"deployments": ["a", "b"]}}}, "bench.yaml")
    gw = Gateway(cfg, request_log=False)
    res, health = gw.resilience, gw.health
    chain = list(gw.routes["g"].deployments)
    req = ChatRequest(model="g", messages=[Message("user", "hi")])
    loop = asyncio.get_running_loop()

    async def bookkeeping() -> None:
        for _ in range(N):
            policy = res.policy("g", req)
            plan = AttemptPlan(chain, RouteDecision(model="g", deployment="a", strategy="s"), health, policy)
            dep, token = await plan.next()
            health.started(dep.name)
            health.finished(dep.name)
            health.breaker.release(dep.name, token)
            health.ok(dep.name, 1.0)
            plan.served(dep)

    async def decision_only() -> None:  # the part every request pays anyway (subtracted)
        for _ in range(N):
            RouteDecision(model="g", deployment="a", strategy="s")

    async def raw_stream() -> None:
        for _ in range(N // 10):
            async for _c in chunks(CHUNKS):
                pass

    async def guarded_stream() -> None:
        dep = chain[0]
        for _ in range(N // 10):
            health.started(dep.name)
            g = GuardedStream(chunks(CHUNKS), dep, health, 1, idle_s=120.0, until=loop.time() + 600,
                              ttft_ms=1.0)  # type: ignore[arg-type]
            async for _c in g:
                pass

    async def raw_stream_short() -> None:
        for _ in range(N // 10):
            async for _c in chunks(1):
                pass

    async def guarded_stream_short() -> None:
        dep = chain[0]
        for _ in range(N // 10):
            health.started(dep.name)
            g = GuardedStream(chunks(1), dep, health, 1, idle_s=120.0, until=loop.time() + 600,
                              ttft_ms=1.0)  # type: ignore[arg-type]
            async for _c in g:
                pass

    async def nop() -> None:
        return None

    async def bare() -> None:
        for _ in range(N):
            await nop()

    async def timed() -> None:
        for _ in range(N):
            async with asyncio.timeout_at(loop.time() + 600):
                await nop()

    book = await best(bookkeeping, N) - await best(decision_only, N)
    per_stream_1 = await best(guarded_stream_short, N // 10) - await best(raw_stream_short, N // 10)
    per_stream_20 = await best(guarded_stream, N // 10) - await best(raw_stream, N // 10)
    per_chunk = (per_stream_20 - per_stream_1) / (CHUNKS - 1)
    timer = await best(timed, N) - await best(bare, N)
    print("| piece | µs |")
    print("|---|---:|")
    print(f"| bookkeeping of one successful call (policy, plan, breaker, health) | {book:.2f} |")
    print(f"| stream guard, fixed part (set-up, end, health) | {per_stream_1 - per_chunk:.2f} |")
    print(f"| stream guard, per chunk | {per_chunk:.2f} |")
    print(f"| one `asyncio.timeout_at` (armed only when the adapter does not enforce the limit) | {timer:.2f} |")


if __name__ == "__main__":
    uvloop.run(main())
