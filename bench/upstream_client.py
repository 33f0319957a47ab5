"""Upstream HTTP client microbenchmark: CPU per pooled keep-alive POST to ../shared/bench's fake
upstream, 50 concurrent, for the clients a Python gateway could use. It is what chose wreq for
providers/http.py (docs/BENCHMARKS.md). Pin the client to one core and the upstream to another:

    taskset -c 0 .venv/bin/python ../shared/bench/fake_upstream.py 18111 &
    taskset -c 1 .venv/bin/python bench/upstream_client.py --url http://127.0.0.1:18111 -n 20000

Clients that are not installed are skipped (aiohttp comes with the dev extra; pip install
pyreqwest / httpr to compare those too).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import orjson

HEADERS = {"content-type": "application/json", "authorization": "Bearer bench"}


def body(stream: bool) -> bytes:
    return orjson.dumps({"model": "bench-model", "stream": stream,
                         "messages": [{"role": "user", "content": "Say hello."}]})


async def drive(one: Callable[[], Awaitable[None]], n: int, concurrency: int) -> tuple[float, float]:
    """(requests/s, CPU µs per request) for n calls of `one` from `concurrency` workers."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6


_CLOSE: list[Callable[[], Awaitable[None]]] = []


def aiohttp_calls(url: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import aiohttp
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    _CLOSE.append(session.close)
    plain, streamed = body(False), body(True)

    async def one() -> None:
        async with session.post(url, data=plain, headers=HEADERS) as r:
            await r.read()

    async def one_stream() -> None:
        async with session.post(url, data=streamed, headers=HEADERS) as r:
            async for _ in r.content.iter_any():
                pass
    return one, one_stream


def wreq_calls(url: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import wreq
    client = wreq.Client(no_proxy=True)
    plain, streamed, timeout = body(False), body(True), timedelta(seconds=30)

    async def one() -> None:
        r = await client.post(url, headers=HEADERS, body=plain, timeout=timeout)
        (await r.bytes()).tobytes()

    async def one_stream() -> None:
        r = await client.post(url, headers=HEADERS, body=streamed, timeout=timeout)
        async with r.stream() as s:
            async for _ in s:
                pass
    return one, one_stream


def pyreqwest_calls(url: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder
    client = ClientBuilder().no_proxy().build()
    plain, streamed = body(False), body(True)

    async def one() -> None:
        r = await client.post(url).headers(HEADERS).body_bytes(plain).build().send()
        await r.bytes()

    async def one_stream() -> None:
        req = client.post(url).headers(HEADERS).body_bytes(streamed).streamed_read_buffer_limit(0)
        async with req.build_streamed() as r:
            while await r.body_reader.read_chunk() is not None:
                pass
    return one, one_stream


def httpr_calls(url: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import httpr
    client = httpr.AsyncClient()
    plain, streamed = body(False), body(True)

    async def one() -> None:
        await client.post(url, content=plain, headers=HEADERS)

    async def one_stream() -> None:
        await client.post(url, content=streamed, headers=HEADERS)
    return one, one_stream


CLIENTS = {"aiohttp": aiohttp_calls, "wreq": wreq_calls, "pyreqwest": pyreqwest_calls, "httpr": httpr_calls}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:18111")
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("-c", "--concurrency", type=int, default=50)
    args = p.parse_args()
    url = args.url.rstrip("/") + "/v1/chat/completions"
    print(f"{'client':10} {'mode':10} {'req/s':>9} {'CPU µs/req':>11}")
    for name, make in CLIENTS.items():
        if importlib.util.find_spec(name) is None:
            print(f"{name:10} (not installed)")
            continue
        for mode, call in zip(("nonstream", "stream"), make(url), strict=True):
            await drive(call, min(2000, args.n), args.concurrency)  # warm-up: connections, caches
            rps, cpu = await drive(call, args.n, args.concurrency)
            print(f"{name:10} {mode:10} {rps:9.0f} {cpu:11.1f}")
    for close in _CLOSE:
        await close()


if __name__ == "__main__":
    import uvloop
    uvloop.run(main())
