"""The benchmark's own parts: `bench/gateway.yaml` (what the harness starts, and what
docs/BENCHMARKS.md says was on) and `bench/wreq_floor.py` (our stack with nothing on top), each
served on loopback against a real upstream, so a figure in the benchmark is never taken from a
config or a floor that quietly stopped doing what the document says."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from upstreamkit import ThreadedUpstream

from conftest import ServerThread
from modelyard.providers import io_threads

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-bench-0123456789abcdef0123"
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "bench-model",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "bench-model"}
EVENTS = [
    {**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hel"}, "finish_reason": None}]},
    {**BASE, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
]
USAGE_EVENT = {**BASE, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}


class RecordingUpstream:
    """The fake upstream's protocol: a JSON answer, or SSE with the usage event when asked for it;
    keeps each request body it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.server = ThreadedUpstream(self.handle)

    @staticmethod
    def sse(usage: bool) -> bytes:
        events = [*EVENTS, USAGE_EVENT] if usage else EVENTS
        return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        if not body.get("stream"):
            return web.json_response(ANSWER)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(self.sse(bool((body.get("stream_options") or {}).get("include_usage"))))
        await resp.write_eof()
        return resp


@pytest.fixture()
def upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RecordingUpstream:
    up = RecordingUpstream()
    monkeypatch.setenv("UPSTREAM_URL", up.server.api_base)
    monkeypatch.setenv("BENCH_KEY", KEY)
    monkeypatch.setenv("BENCH_OUT", str(tmp_path))
    return up


def test_the_bench_config_is_a_model_group_on_the_default_strategy_with_a_virtual_key_and_log(
        upstream: RecordingUpstream, tmp_path: Path) -> None:
    from modelyard.config import ModelGroupConfig
    from modelyard.gateway import Gateway
    from modelyard.server.app import create_app

    gw = Gateway.from_file(str(ROOT / "bench" / "gateway.yaml"))
    route = gw.routes["bench-model"]
    assert route.is_group and route.strategy == ModelGroupConfig.model_fields["strategy"].default
    assert [d.name for d in route.deployments] == ["upstream"]
    assert gw.deployments["upstream"].api_base == upstream.server.api_base  # ${UPSTREAM_URL}
    assert gw.request_log is not None and gw.request_log.path == str(tmp_path / "modelyard-bench.db")

    with ServerThread(create_app(gw)) as s:
        with pytest.raises(openai.AuthenticationError):  # ${BENCH_KEY} is a virtual key with a budget and rpm
            openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
                model="bench-model", messages=[{"role": "user", "content": "Say hello."}])
        client = openai.OpenAI(base_url=s.url + "/v1", api_key=KEY, max_retries=0)
        # The harness's two requests (post.lua): with max_tokens, streamed and not.
        raw = client.chat.completions.with_raw_response.create(
            model="bench-model", max_tokens=16, messages=[{"role": "user", "content": "Say hello."}])
        assert raw.headers["x-modelyard-deployment"] == "upstream"
        assert raw.headers["x-modelyard-route"].startswith(route.strategy)
        assert raw.parse().choices[0].message.content == "hello"
        chunks = list(client.chat.completions.create(
            model="bench-model", max_tokens=16, stream=True, messages=[{"role": "user", "content": "Say hello."}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
    # The gateway asked the upstream for the stream's usage (to account for it), though the client did not.
    assert upstream.bodies[-1]["stream_options"] == {"include_usage": True}
    with sqlite3.connect(tmp_path / "modelyard-bench.db") as db:  # flushed on shutdown
        rows = db.execute("SELECT status, deployment, stream, input_tokens, output_tokens, key_id, team FROM requests "
                          "WHERE status = 200 ORDER BY stream").fetchall()
    assert rows == [(200, "upstream", 0, 9, 2, "cfg_bench", "bench"), (200, "upstream", 1, 9, 2, "cfg_bench", "bench")]
    assert gw.config.declared_keys()[0][1].budget_usd and gw.config.declared_keys()[0][1].rpm


def _wreq_floor(monkeypatch: pytest.MonkeyPatch, usage: bool) -> Any:
    """bench/wreq_floor.py loaded fresh (it reads its environment when imported)."""
    monkeypatch.setenv("WREQ_FLOOR_USAGE", "1" if usage else "0")
    spec = importlib.util.spec_from_file_location(f"wreq_floor_{usage}", ROOT / "bench" / "wreq_floor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def auto_after() -> Iterator[None]:
    yield
    io_threads.configure("auto")  # the process's default again, for the tests after this one


@pytest.mark.parametrize("usage", [False, True])
@pytest.mark.usefixtures("auto_after")
def test_the_wreq_floor_forwards_the_upstream_bytes(upstream: RecordingUpstream, monkeypatch: pytest.MonkeyPatch,
                                                    usage: bool) -> None:
    floor = _wreq_floor(monkeypatch, usage)
    with ServerThread(floor.app) as s:
        assert set(io_threads.threads().values()) <= {os.SCHED_BATCH}  # the floor runs them batch
        body = b'{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16'
        plain = httpx.post(s.url + "/v1/chat/completions", content=body + b"}", timeout=10)
        assert plain.status_code == 200 and plain.json() == ANSWER
        streamed = httpx.post(s.url + "/v1/chat/completions", content=body + b',"stream":true}', timeout=10)
        deadline = time.monotonic() + 5
        while len(upstream.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert streamed.status_code == 200 and streamed.headers["content-type"] == "text/event-stream"
    # Untouched bytes; WREQ_FLOOR_USAGE=1 asks for usage as the gateway does, and forwards that event too.
    assert streamed.content == RecordingUpstream.sse(usage)
    assert ("stream_options" in upstream.bodies[-1]) is usage
