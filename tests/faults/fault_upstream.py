"""A fault-injecting fake upstream: a real aiohttp.web server on loopback, in its own thread, that
speaks the OpenAI chat-completions and the Anthropic Messages wire formats and plays a script of
faults per deployment.

Each deployment gets its own path prefix (`/<name>/v1/chat/completions`, `/<name>/v1/messages`);
`script(name, f1, f2, ..., then=OK)` makes its next requests play f1, f2, ... and `then` after
that. Every request is counted in `hits[name]`, and every request the gateway abandoned (hedge
loser, timeout) in `cancelled[name]`. Answers say "served by <name>" so a client can tell who
answered.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Fault:
    kind: str  # ok status rate_limit reset reset_mid stall stall_mid drip context policy bad_json flaky
    status: int = 200
    seconds: float = 0.0  # stall length, Retry-After, or drip interval
    chunks: int = 3  # words streamed before a mid-stream fault, or dripped
    p: float = 0.0  # flaky: failure probability


OK = Fault("ok")


def status(code: int) -> Fault:
    return Fault("status", status=code)


def rate_limit(retry_after: float) -> Fault:
    return Fault("rate_limit", status=429, seconds=retry_after)


RESET = Fault("reset")  # connection dropped before any header


def reset_mid(chunks: int = 2) -> Fault:
    return Fault("reset_mid", chunks=chunks)


def stall(seconds: float = 30.0) -> Fault:
    """Accept the request and say nothing (no header, no byte) for `seconds`, then answer."""
    return Fault("stall", seconds=seconds)


def stall_mid(chunks: int = 2, seconds: float = 30.0) -> Fault:
    return Fault("stall_mid", chunks=chunks, seconds=seconds)


def drip(interval: float, chunks: int = 5) -> Fault:
    """A slow but healthy upstream: one word every `interval` seconds."""
    return Fault("drip", seconds=interval, chunks=chunks)


CONTEXT = Fault("context", status=400)
POLICY = Fault("policy", status=400)
BAD_JSON = Fault("bad_json")


def flaky(p: float) -> Fault:
    """503 with probability `p` (seeded), otherwise a normal answer."""
    return Fault("flaky", p=p)


class FaultUpstream:
    def __init__(self, seed: int = 7) -> None:
        self.scripts: dict[str, collections.deque[Fault]] = {}
        self.then: dict[str, Fault] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.cancelled: collections.Counter[str] = collections.Counter()
        self.rng = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> FaultUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{dep}/v1/chat/completions", self.openai)
        app.router.add_post("/{dep}/v1/messages", self.anthropic)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- scripting -------------------------------------------------------------------------------
    def base(self, dep: str, fmt: str = "openai") -> str:
        """The api_base a deployment config should use."""
        return f"{self.url}/{dep}/v1" if fmt == "openai" else f"{self.url}/{dep}"

    def script(self, dep: str, *faults: Fault, then: Fault = OK) -> None:
        self.scripts[dep] = collections.deque(faults)
        self.then[dep] = then

    def reset(self) -> None:
        self.scripts.clear()
        self.then.clear()
        self.hits.clear()
        self.cancelled.clear()

    def _next(self, dep: str) -> Fault:
        self.hits[dep] += 1
        q = self.scripts.get(dep)
        f = q.popleft() if q else self.then.get(dep, OK)
        if f.kind == "flaky":
            return status(503) if self.rng.random() < f.p else OK
        return f

    # --- handlers --------------------------------------------------------------------------------
    async def openai(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, OpenAIFormat)

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, AnthropicFormat)

    async def _serve(self, request: web.Request, fmt: type[Format]) -> web.StreamResponse:
        dep = request.match_info["dep"]
        body = orjson.loads(await request.read())
        fault = self._next(dep)
        n = fault.chunks + 3 if fault.kind in ("reset_mid", "stall_mid") else fault.chunks  # words in the answer
        words = [f"served by {dep}"] + [f" word{i}" for i in range(max(n, 1) - 1)]
        try:
            return await self._play(request, fmt, fault, dep, words, bool(body.get("stream")))
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled[dep] += 1
            raise

    async def _play(self, request: web.Request, fmt: type[Format], f: Fault, dep: str, words: list[str],
                    stream: bool) -> web.StreamResponse:
        k = f.kind
        if k == "stall":
            await asyncio.sleep(f.seconds)
        if k == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if k in ("status", "rate_limit", "context", "policy"):
            headers = {"retry-after": f"{f.seconds:g}"} if k == "rate_limit" else None
            return web.Response(body=orjson.dumps(fmt.error(k, f.status)), status=f.status,
                                content_type="application/json", headers=headers)
        if k == "bad_json":
            if stream:
                resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await resp.prepare(request)
                await resp.write(b"data: {this is not json\n\n")
                await resp.write_eof()
                return resp
            return web.Response(body=b"{this is not json", content_type="application/json")
        if not stream:
            doc = orjson.dumps(fmt.complete(dep, "".join(words)))
            if k in ("ok", "stall"):
                return web.Response(body=doc, content_type="application/json")
            # Mid-body faults for a non-streamed answer: half the body, then the fault.
            resp = web.StreamResponse(headers={"content-type": "application/json"})
            resp.content_length = len(doc)
            await resp.prepare(request)
            await resp.write(doc[: len(doc) // 2])
            if await self._mid_fault(request, f):
                return resp
            await resp.write(doc[len(doc) // 2:])
            return resp
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        events = fmt.stream(dep, words)
        head, body_events, tail = events[0], events[1:-1], events[-1]
        await resp.write(head)
        for i, ev in enumerate(body_events):
            if k in ("reset_mid", "stall_mid") and i == f.chunks and await self._mid_fault(request, f):
                return resp
            if k == "drip":
                await asyncio.sleep(f.seconds)
            await resp.write(ev)
        await resp.write(tail)
        await resp.write_eof()
        return resp

    async def _mid_fault(self, request: web.Request, f: Fault) -> bool:
        """Strike in the middle of a body; True if the connection is gone."""
        if f.kind == "reset_mid":
            await asyncio.sleep(0.01)  # let what was written reach the gateway first
            assert request.transport is not None
            request.transport.abort()
            return True
        await asyncio.sleep(f.seconds)  # stall_mid, drip
        return False


class Format:
    @staticmethod
    def error(kind: str, status: int) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def complete(dep: str, text: str) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def stream(dep: str, words: list[str]) -> list[bytes]:
        """SSE events: the first, the content ones (faults strike between these), the last."""
        raise NotImplementedError


class OpenAIFormat(Format):
    @staticmethod
    def error(kind: str, status: int) -> dict[str, Any]:
        if kind == "context":
            return {"error": {"message": "This model's maximum context length is 8192 tokens. However, your "
                              "messages resulted in 9000 tokens.", "type": "invalid_request_error",
                              "param": "messages", "code": "context_length_exceeded"}}
        if kind == "policy":
            return {"error": {"message": "The response was filtered due to the prompt triggering content "
                              "management policy.", "type": "invalid_request_error", "param": "prompt",
                              "code": "content_filter"}}
        if kind == "rate_limit":
            return {"error": {"message": "Rate limit reached for requests", "type": "requests",
                              "param": None, "code": "rate_limit_exceeded"}}
        return {"error": {"message": f"upstream failure {status}", "type": "server_error", "param": None,
                          "code": None}}

    @staticmethod
    def complete(dep: str, text: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{dep}", "object": "chat.completion", "created": int(time.time()),
                "model": f"model-{dep}",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}

    @staticmethod
    def stream(dep: str, words: list[str]) -> list[bytes]:
        def ev(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
            d: dict[str, Any] = {"id": f"chatcmpl-{dep}", "object": "chat.completion.chunk", "created": 1,
                                 "model": f"model-{dep}",
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None
                                 else []}
            if usage is not None:
                d["usage"] = usage
            return b"data: " + orjson.dumps(d) + b"\n\n"
        return ([ev({"role": "assistant", "content": ""})] + [ev({"content": w}) for w in words]
                + [ev({}, "stop") + ev(None, usage={"prompt_tokens": 10, "completion_tokens": len(words),
                                                    "total_tokens": 10 + len(words)})
                   + b"data: [DONE]\n\n"])


class AnthropicFormat(Format):
    @staticmethod
    def error(kind: str, status: int) -> dict[str, Any]:
        etype, msg = {
            "context": ("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
            "policy": ("invalid_request_error", "Output blocked by content filtering policy"),
            "rate_limit": ("rate_limit_error", "Number of requests has exceeded your rate limit"),
        }.get(kind, ("overloaded_error" if status == 529 else "api_error", f"upstream failure {status}"))
        return {"type": "error", "error": {"type": etype, "message": msg}}

    @staticmethod
    def complete(dep: str, text: str) -> dict[str, Any]:
        return {"id": f"msg_{dep}", "type": "message", "role": "assistant", "model": f"model-{dep}",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5}}

    @staticmethod
    def stream(dep: str, words: list[str]) -> list[bytes]:
        def ev(kind: str, data: dict[str, Any]) -> bytes:
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"
        start = ev("message_start", {"message": {"id": f"msg_{dep}", "type": "message", "role": "assistant",
                                                 "model": f"model-{dep}", "content": [], "stop_reason": None,
                                                 "usage": {"input_tokens": 10, "output_tokens": 1}}})
        start += ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        deltas = [ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}}) for w in words]
        end = (ev("content_block_stop", {"index": 0})
               + ev("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": len(words)}})
               + ev("message_stop", {}))
        return [start, *deltas, end]
