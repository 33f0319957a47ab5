"""Only a complete, successful stream is stored: a client that leaves mid-stream and an upstream
that fails mid-stream leave nothing in the cache. A scripted OpenAI-format upstream on loopback."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from upstreamkit import ThreadedUpstream

from conftest import make_server


class ScriptedUpstream:
    """Streams `words` chunks 20 ms apart; `fail_after` chunks in, it drops the connection."""

    def __init__(self) -> None:
        self.fail_after: int | None = None
        self.words = 5
        self.server = ThreadedUpstream(self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response({
                "id": "c0", "object": "chat.completion", "created": 1, "model": "scripted",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(self.words):
            if self.fail_after is not None and i == self.fail_after:
                assert request.transport is not None
                request.transport.close()  # the upstream dies mid-stream
                return resp
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "scripted",
                     "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(0.02)
        end = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "scripted",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "scripted", "choices": [],
                 "usage": {"prompt_tokens": 5, "completion_tokens": self.words, "total_tokens": 5 + self.words}}
        await resp.write(b"data: " + orjson.dumps(end) + b"\n\ndata: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        return resp


def _config(up: ScriptedUpstream) -> dict[str, Any]:
    return {"deployments": {"up": {"provider": "openai", "model": "scripted", "api_base": up.server.api_base}},
            "model_groups": {"g": {"deployments": ["up"]}}, "cache": {"mode": "exact"}}


def _body(content: str) -> dict[str, Any]:
    return {"model": "g", "stream": True, "messages": [{"role": "user", "content": content}]}


def _cached(url: str, content: str) -> str:
    r = httpx.post(url + "/v1/chat/completions", json={**_body(content), "stream": False}, timeout=10)
    return r.headers.get("x-modelyard-cache", "")


def test_an_interrupted_stream_is_not_cached(tmp_path: Path) -> None:
    up = ScriptedUpstream()
    up.words = 40
    with make_server(tmp_path, _config(up)) as s:
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=_body("leave early"), timeout=10) as r:
            assert r.headers["x-modelyard-cache"] == "miss"
            seen = 0
            for line in r.iter_lines():
                seen += line.startswith("data:")
                if seen >= 3:
                    break  # the client leaves mid-stream
        time.sleep(0.3)
        assert httpx.get(s.url + "/admin/cache/stats").json()["stores"] == 0
        up.words = 3
        # the same request, now complete: stored, and then served from the cache
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=_body("leave early"), timeout=10) as r:
            assert r.headers["x-modelyard-cache"] == "miss"
            assert "".join(r.iter_lines())
        time.sleep(0.2)
        assert _cached(s.url, "leave early") == "hit"


def test_a_stream_that_fails_midway_is_not_cached(tmp_path: Path) -> None:
    up = ScriptedUpstream()
    up.fail_after = 2
    with make_server(tmp_path, _config(up)) as s:
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=_body("fail midway"), timeout=10) as r:
            events = [line for line in r.iter_lines() if line.startswith("data:")]
        assert any('"error"' in e for e in events)  # the client saw a well-formed SSE error
        time.sleep(0.3)
        stats = httpx.get(s.url + "/admin/cache/stats").json()
        assert stats["stores"] == 0 and stats["entries"] == 0
        up.fail_after = None
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=_body("fail midway"), timeout=10) as r:
            assert r.headers["x-modelyard-cache"] == "miss"
            text = "".join(r.iter_lines())
        assert "word2" in text and "[DONE]" in text
        time.sleep(0.2)
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=_body("fail midway"), timeout=10) as r:
            assert r.headers["x-modelyard-cache"] == "hit"
            replay = "".join(r.iter_lines())
        assert "word2" in replay and "[DONE]" in replay
