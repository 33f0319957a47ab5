"""Spans from the real server (uvicorn on loopback), exported to the OpenTelemetry SDK's in-memory
exporter: one per request, per routing decision and per upstream attempt, with GenAI attributes;
a client's `traceparent` continues its trace, and the attempt's goes to the upstream (an aiohttp
server on loopback that records the headers it gets)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conftest import make_server
from modelyard.telemetry import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SECRET = "sk-upstream-secret-0123456789abcdef"
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "up-model-2024",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "the answer is 42"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}


class HeaderUpstream:
    """An OpenAI-format upstream on its own thread that keeps the headers of each request."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        assert ready.wait(5)

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        await request.read()
        return web.json_response(ANSWER)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()


def config(upstream: HeaderUpstream) -> dict[str, Any]:
    sim = {"provider": "sim", "model": "sim/fast", "sim": {"zero_latency": True, "answers": {"spam": "spam"}}}
    up = {"provider": "openai", "model": "up-model", "api_base": f"http://127.0.0.1:{upstream.port}/v1",
          "api_key": "env:TRACING_TEST_KEY"}
    return {"deployments": {"up": up,
                            "s1": sim, "s2": sim, "s3": sim},
            "model_groups": {"g": {"deployments": ["up"]}, "sims": {"deployments": ["s1", "s2", "s3"]}}}


@pytest.fixture(autouse=True)
def _upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACING_TEST_KEY", SECRET)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter, service_name="modelyard-test")
    yield exporter
    tracing.shutdown()


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in exporter.get_finished_spans():
        out.setdefault(s.name, []).append(s)
    return out


def test_request_route_and_attempt_spans_continue_the_clients_trace(tmp_path: Any,
                                                                      spans: InMemorySpanExporter) -> None:
    upstream = HeaderUpstream()
    with make_server(tmp_path, config(upstream)) as srv:
        r = post(srv.url, {"model": "g", "max_tokens": 50, "messages": [{"role": "user", "content": "secret plan"}]},
                 traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01")
        assert r.status_code == 200
    found = by_name(spans)
    (req,), (route,), (attempt,) = found["chat g"], found["route g"], found["chat up-model"]
    # one trace, the client's: request <- client, route and attempt <- request
    assert all(format(s.context.trace_id, "032x") == TRACE_ID for s in (req, route, attempt))
    assert format(req.parent.span_id, "016x") == PARENT_ID and req.parent.is_remote
    assert route.parent.span_id == req.context.span_id and attempt.parent.span_id == req.context.span_id
    assert attempt.kind == SpanKind.CLIENT
    a = req.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "g"
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.response.model"] == "up-model"
    assert a["gen_ai.usage.input_tokens"] == 9 and a["gen_ai.usage.output_tokens"] == 5
    assert a["gen_ai.request.max_tokens"] == 50 and a["modelyard.deployment"] == "up"
    assert a["modelyard.cost_usd"] >= 0 and a["http.response.status_code"] == 200
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["gen_ai.request.model"] == "up-model"
    assert route.attributes["modelyard.route.deployment"] == "up"
    # the upstream got the attempt's context, and nothing recorded the prompt, the answer or the key
    (sent,) = upstream.headers
    assert sent["traceparent"] == f"00-{TRACE_ID}-{format(attempt.context.span_id, '016x')}-01"
    for s in (req, route, attempt):
        text = repr(dict(s.attributes or {}))
        assert "secret plan" not in text and "42" not in text and SECRET not in text
        assert "gen_ai.input.messages" not in (s.attributes or {})


def test_stream_errors_and_new_traces(tmp_path: Any, spans: InMemorySpanExporter) -> None:
    upstream = HeaderUpstream()
    with make_server(tmp_path, config(upstream)) as srv:
        with httpx.stream("POST", srv.url + "/v1/chat/completions", timeout=30,
                          json={"model": "sims", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status_code == 200
            r.read()
        assert post(srv.url, {"model": "nope", "messages": [{"role": "user", "content": "x"}]}).status_code == 404
    found = by_name(spans)
    (stream,) = found["chat sims"]
    assert stream.parent is None  # no traceparent: a new trace
    assert stream.attributes["modelyard.stream"] is True and stream.attributes["gen_ai.usage.output_tokens"] > 0
    assert stream.attributes["modelyard.ttft_ms"] >= 0
    (bad,) = found["chat nope"]
    assert bad.status.status_code == StatusCode.ERROR and bad.attributes["error.type"] == "not_found_error"


def test_mode_sub_calls_are_child_spans(tmp_path: Any, spans: InMemorySpanExporter) -> None:
    upstream = HeaderUpstream()
    with make_server(tmp_path, config(upstream)) as srv:
        r = post(srv.url, {"model": "sims", "messages": [{"role": "user", "content": "spam?"}],
                           "modelyard": {"mode": "vote", "models": ["s1", "s2", "s3"]}})
        assert r.status_code == 200, r.text
    found = by_name(spans)
    (parent,) = found["chat sims"]
    assert parent.attributes["modelyard.mode"] == "vote"
    subs = [s for name in ("chat s1", "chat s2", "chat s3") for s in found[name]
            if s.parent is not None and s.parent.span_id == parent.context.span_id]
    assert len(subs) == 3
    assert {s.attributes["modelyard.deployment"] for s in subs} == {"s1", "s2", "s3"}


def test_content_recorded_only_when_configured(tmp_path: Any) -> None:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter, record_content=True)
    try:
        upstream = HeaderUpstream()
        with make_server(tmp_path, config(upstream)) as srv:
            assert post(srv.url, {"model": "g", "messages": [{"role": "user", "content": "secret plan"}]}
                        ).status_code == 200
    finally:
        tracing.shutdown()
    (req,) = by_name(exporter)["chat g"]
    assert "secret plan" in req.attributes["gen_ai.input.messages"]
    assert "the answer is 42" in req.attributes["gen_ai.output.messages"]


def test_off_by_default() -> None:
    assert tracing.TRACER is None
    assert tracing.configure(None) is False and tracing.TRACER is None
