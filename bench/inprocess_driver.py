"""Drive the gateway's ASGI app in process (no uvicorn, no sockets on the client side) at a fixed
concurrency against a real upstream (the harness's fake upstream), as `modelyard serve` sets it up
(GC frozen after start, the I/O thread policy); prints the event loop's CPU per request.

It is the driver of bench/instructions_per_request.sh, which runs it under valgrind to count CPU
instructions per request — a figure that does not move with the load on the box, unlike µs.

    UPSTREAM_URL=http://127.0.0.1:18001/v1 BENCH_KEY=... .venv/bin/python bench/inprocess_driver.py bench/gateway.yaml
    ... --floor     the same through bench/wreq_floor.py's app (the pass-through on our stack)
    BENCH_UNIQUE=1 ...   every request's user turn new (with BENCH_CACHE=exact: the cache's miss path)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

BODY = b'{"model":"bench-model","stream":false,"messages":[{"role":"user","content":"Say hello."}]}'


def scope(key: bytes) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
            "http_version": "1.1", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "scheme": "http",
            "root_path": "", "headers": [(b"host", b"x"), (b"content-type", b"application/json"),
                                         (b"authorization", b"Bearer " + key),
                                         (b"content-length", str(len(BODY)).encode())]}


_LIFESPAN: list[asyncio.Future[None]] = []  # the floor app's lifespan task, kept for the run


async def floor_app() -> Any:
    sys.path.insert(0, str(Path(__file__).parent))
    import wreq_floor

    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})

    async def send(_: dict[str, Any]) -> None:
        return None

    _LIFESPAN.append(asyncio.ensure_future(wreq_floor.app({"type": "lifespan"}, startup.get, send)))
    await asyncio.sleep(0.1)
    gc.freeze()
    return wreq_floor.app


async def gateway_app(config: str) -> Any:
    from modelyard.cli.serve import _after_start, serving_app
    from modelyard.gateway import Gateway

    gw = Gateway.from_file(config)
    app = serving_app(gw)
    await gw.start()
    await app.auth.start()
    _after_start()
    return app


async def main(a: argparse.Namespace) -> None:
    from modelyard.server import watch

    watch.WATCH_AFTER_S *= a.slowdown  # (see --slowdown)
    app = await (floor_app() if a.floor else gateway_app(a.config))
    base = scope(os.environ["BENCH_KEY"].encode())
    statuses: dict[int, int] = {}
    unique = os.environ.get("BENCH_UNIQUE") == "1"
    sent_count = 0

    async def one() -> None:
        nonlocal sent_count
        sent = False
        sent_count += 1
        body = BODY.replace(b"Say hello.", b"Say hello %08d." % sent_count) if unique else BODY

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # (a client that stays)
            return {"type": "http.disconnect"}

        async def send(m: dict[str, Any]) -> None:
            if m["type"] == "http.response.start":
                statuses[m["status"]] = statuses.get(m["status"], 0) + 1

        sc = dict(base)
        if unique:  # (the same length: "Say hello." + 9 bytes)
            sc["headers"] = [*base["headers"][:3], (b"content-length", str(len(body)).encode())]
        await app(sc, receive, send)

    async def run(n: int) -> None:
        async def worker() -> None:
            for _ in range(n // a.concurrency):
                await one()
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))

    await run(a.warm)
    for _ in range(a.reps):
        t0 = time.thread_time()
        await run(a.n)
        print(f"{(time.thread_time() - t0) / a.n * 1e6:.1f} µs event-loop CPU per request", flush=True)
    print("statuses:", statuses)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("config", nargs="?", default="bench/gateway.yaml")
    p.add_argument("-n", type=int, default=5000, help="requests per rep")
    p.add_argument("-c", "--concurrency", type=int, default=50)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warm", type=int, default=1000, help="requests before measuring")
    p.add_argument("--floor", action="store_true", help="bench/wreq_floor.py's app instead of the gateway")
    p.add_argument("--slowdown", type=float, default=1.0,
                   help="how much slower than native this runs (valgrind: ~50): the disconnect watch's threshold "
                        "is scaled by it, so requests that end before it natively are not watched here either")
    uvloop.run(main(p.parse_args()))
