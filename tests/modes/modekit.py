"""Shared pieces for the multi-model mode tests: gateways on scripted sim fleets, request-log reads,
and a fake OpenAI-format upstream server that records what it saw (requests, in-flight counts,
client disconnects)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message


def sim(model: str = "sim/fast", *, answers: dict[str, str] | None = None, **settings: Any) -> dict[str, Any]:
    """A sim deployment; zero latency unless the test gives it timing (and clears the env var)."""
    s: dict[str, Any] = {"zero_latency": True, **settings}
    if answers:
        s["answers"] = answers
    return {"provider": "sim", "model": model, "sim": s}


def timed(model: str = "sim/fast", ttft_ms: float = 10, *, answers: dict[str, str] | None = None,
          **settings: Any) -> dict[str, Any]:
    """A sim deployment with a fixed time to first token and near-instant generation."""
    return sim(model, answers=answers, zero_latency=False, ttft_ms=ttft_ms, tokens_per_s=1e6, jitter=0.0, **settings)


def gateway(tmp_path: Path, deployments: dict[str, Any], groups: dict[str, Any] | None = None,
            pipelines: dict[str, Any] | None = None, **extra: Any) -> Gateway:
    data: dict[str, Any] = {"deployments": deployments, "model_groups": groups or {},
                            "server": {"request_log": {"path": str(tmp_path / "log.db")}}, **extra}
    if pipelines:
        data["pipelines"] = pipelines
    return Gateway(parse_config(data, "t.yaml"), source="t.yaml")


def req(text: str = "Is this spam?", model: str = "auto", **metadata: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", text)], metadata=metadata)


def rows(gw: Gateway, rid: str) -> dict[str, dict[str, Any]]:
    """The request-log rows of a request and its sub-calls (ids `rid` and `rid.*`), by id."""
    assert gw.request_log is not None
    cols = ("id", "model", "deployment", "status", "input_tokens", "output_tokens", "cost_usd", "route", "error")
    found = gw.request_log.query(f"SELECT {', '.join(cols)} FROM requests WHERE id = ? OR id LIKE ?",
                                 (rid, rid + ".%"))
    out = {}
    for r in found:
        d = dict(zip(cols, r, strict=True))
        d["route"] = orjson.loads(d["route"]) if d["route"] else None
        out[d["id"]] = d
    return out


async def logged(gw: Gateway, rid: str) -> dict[str, dict[str, Any]]:
    assert gw.request_log is not None
    await gw.request_log.flush()
    return rows(gw, rid)


# --- a fake OpenAI-format upstream -----------------------------------------------------------------

Behaviour = Callable[[web.Request, dict[str, Any], "FakeUpstream"], Awaitable[web.StreamResponse]]


@dataclass
class FakeUpstream:
    """Answers /v1/chat/completions per upstream model name with a scripted behaviour."""

    url: str = ""
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    disconnected: dict[str, asyncio.Event] = field(default_factory=dict)
    inflight: int = 0
    max_inflight: int = 0

    def gone(self, model: str) -> asyncio.Event:
        return self.disconnected.setdefault(model, asyncio.Event())

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.bodies.append(body)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self.behaviours[body["model"]](request, body, self)
        except (asyncio.CancelledError, ConnectionError):
            self.gone(body["model"]).set()
            raise
        finally:
            self.inflight -= 1


def completion(text: str, model: str = "m", prompt_tokens: int = 10, completion_tokens: int = 5) -> dict[str, Any]:
    return {"id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": 1700000000,
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def answer(text: str | Callable[[dict[str, Any]], str], delay: float = 0.0) -> Behaviour:
    """Answer (after `delay` seconds), as JSON or as SSE when the request streams."""
    async def handle(request: web.Request, body: dict[str, Any], fake: FakeUpstream) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        content = text(body) if callable(text) else text
        if not body.get("stream"):
            return web.json_response(completion(content, body["model"]))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000, "model": body["model"]}
        for delta, finish in (({"role": "assistant", "content": ""}, None), ({"content": content}, None), ({}, "stop")):
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        usage = {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
        await resp.write(b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp
    return handle


def stall(seconds: float = 10.0) -> Behaviour:
    """Never answer in time: the test checks that the gateway hangs up (recorded in `disconnected`)."""
    async def handle(request: web.Request, body: dict[str, Any], fake: FakeUpstream) -> web.StreamResponse:
        if body.get("stream"):  # a stream that has started but sends nothing
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await asyncio.sleep(seconds)
            return resp
        await asyncio.sleep(seconds)
        return web.json_response(completion("too late", body["model"]))
    return handle


async def start_upstream() -> tuple[FakeUpstream, web.AppRunner]:
    fake = FakeUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.2, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}/v1"
    return fake, runner


async def upstream_fixture() -> AsyncIterator[FakeUpstream]:
    fake, runner = await start_upstream()
    try:
        yield fake
    finally:
        await runner.cleanup()


def openai_dep(fake: FakeUpstream, model: str, card: str = "fake-card") -> dict[str, Any]:
    return {"provider": "openai", "model": model, "api_base": fake.url, "card": card}


FAKE_CATALOG = {"fake-card": {"provider": "openai", "input_per_m": 1.0, "output_per_m": 2.0,
                              "context_window": 100000, "capabilities": ["json", "streaming", "tools"]}}
