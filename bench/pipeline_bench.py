"""The gateway's pipeline without the network: the ASGI app driven in-process for the bench
request, with the OpenAI adapter's HTTP calls answered from memory with the harness fake upstream's
exact bytes (its non-streamed body; for a stream, the first read brings 8 events as wreq's
read-ahead hands them over, the next `[DONE]`). What is left is our code: parse, route, resilience,
the adapter's parse and merge, accounting, the request log (its SQLite thread included), render.

    taskset -c 1 .venv/bin/python bench/pipeline_bench.py [--stream] [-n 20000]
    taskset -c 1 .venv/bin/python bench/pipeline_bench.py --merge     # merge_read of the two reads alone

Prints CPU µs per request (thread time of the loop, min over 5 runs). Compare trees by running
this alternately with PYTHONPATH=<other tree>/src: the box's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(os.environ.get("HARNESS", ROOT.parent / "shared" / "bench"))
sys.path.insert(0, str(HARNESS))
os.environ.setdefault("UPSTREAM_URL", "http://127.0.0.1:9/v1")
os.environ.setdefault("BENCH_KEY", "sk-bench-pipeline-0123456789abcdef")
os.environ.setdefault("BENCH_OUT", "/tmp")

import fake_upstream  # noqa: E402
import uvloop  # noqa: E402

from modelyard.cli.serve import GC_THRESHOLDS  # noqa: E402
from modelyard.gateway import Gateway  # noqa: E402
from modelyard.providers import http, openai  # noqa: E402
from modelyard.server.app import create_app  # noqa: E402

BODY = fake_upstream.completion_body("bench-model")
EVENTS = fake_upstream.stream_events("bench-model", True)  # 8 events with usage, then [DONE]
READS = (b"".join(EVENTS[:8])[:-2], b"".join(EVENTS[8:])[:-2])  # as `sse_reads` hands them on


class _Headers:
    def get(self, name: str, default: str | None = None) -> str | None:
        return "text/event-stream" if name == "content-type" else default


class _Stream:
    """What `UpstreamStream.open` returns, reading the two bursts and then the end."""

    status, eof, headers, content_type = 200, False, _Headers(), "text/event-stream"

    def __init__(self) -> None:
        self._reads = [READS[0] + b"\n\n", READS[1] + b"\n\n", b""]

    async def read(self) -> bytes:
        piece = self._reads.pop(0)
        self.eof = not piece
        return piece

    async def drain(self, within_s: float) -> None:
        while await self.read():
            pass

    async def body(self) -> bytes:
        return b""

    async def close(self) -> None:
        return None


async def _post(clients: Any, dep: Any, ep: Any, url: str, body: bytes) -> tuple[int, Any, bytes]:
    return 200, _Headers(), BODY


async def _open(cls: Any, clients: Any, dep: Any, ep: Any, url: str, body: bytes) -> _Stream:
    return _Stream()


async def pipeline(stream: bool, n: int) -> float:
    http.post = _post  # type: ignore[assignment]
    http.UpstreamStream.open = classmethod(_open)  # type: ignore[method-assign, assignment]
    body = b'{"model":"bench-model","stream":%s,"messages":[{"role":"user","content":"Say hello."}]}' % (
        b"true" if stream else b"false")
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"authorization", b"Bearer bench-key"), (b"content-length", str(len(body)).encode())]}
    msg = {"type": "http.request", "body": body, "more_body": False}
    sent: list[dict[str, Any]] = []  # the last response's messages: none kept longer, as a server keeps none

    async def receive() -> dict[str, Any]:
        return msg

    async def send(m: dict[str, Any]) -> None:
        if m["type"] == "http.response.start":
            sent.clear()
        sent.append(m)

    gw = Gateway.from_file(str(ROOT / "bench" / "gateway.yaml"))
    app = create_app(gw)
    await gw.start()
    try:
        for _ in range(2000):
            await app(scope, receive, send)
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        best = float("inf")
        for _ in range(5):
            c0 = time.thread_time()
            for _ in range(n):
                await app(scope, receive, send)
                await asyncio.sleep(0)  # one loop iteration between requests, as a server has
            best = min(best, (time.thread_time() - c0) / n * 1e6)
            assert sent[0]["status"] == 200, sent[0]
    finally:
        await gw.close()
    return best


def merge(n: int) -> float:
    gw = Gateway.from_file(str(ROOT / "bench" / "gateway.yaml"))
    dep = next(iter(gw.deployments.values()))

    def both() -> None:
        openai.merge_read(READS[0], dep)
        openai.merge_read(READS[1], dep)

    return min(timeit.repeat(both, number=n, repeat=7)) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stream", action="store_true", help="a streamed request (default: non-streamed)")
    ap.add_argument("--merge", action="store_true", help="time the OpenAI adapter's merge of the two reads alone")
    ap.add_argument("-n", type=int, default=20000)
    a = ap.parse_args()
    if a.merge:
        print(f"merge_read, both reads: {merge(a.n):.2f} µs")
        return
    us = uvloop.run(pipeline(a.stream, a.n))
    print(f"pipeline, {'stream' if a.stream else 'non-stream'}: {us:.2f} µs CPU per request (min of 5)")


if __name__ == "__main__":
    main()
