"""An OpenAI-format stream ends for the client at the upstream's closing usage event: the gateway
does not hold the answer back until the upstream gets round to `[DONE]` and closing its body."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import openai
import orjson
from aiohttp import web
from upstreamkit import ThreadedUpstream

from conftest import make_server

BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "held"}
EVENTS = [
    {**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {**BASE, "choices": [{"index": 0, "delta": {"content": "all of "}, "finish_reason": None}]},
    {**BASE, "choices": [{"index": 0, "delta": {"content": "it"}, "finish_reason": None}]},
    {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {**BASE, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}},
]


class HeldDoneUpstream:
    """Streams the whole answer, usage included, then holds `[DONE]` and the body's end until
    `release` is set (or 10 s pass)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.done_sent = threading.Event()
        self.finished = threading.Event()
        self.server = ThreadedUpstream(self.handle)
        self.port = self.server.port

    async def handle(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in EVENTS))
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 10)
            self.done_sent.set()
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        self.finished.set()
        return resp


def test_the_client_has_the_whole_stream_before_the_upstream_sends_done(tmp_path) -> None:
    up = HeldDoneUpstream()
    cfg = {"deployments": {"held": {"provider": "openai", "model": "held",
                                    "api_base": f"http://127.0.0.1:{up.port}/v1"}},
           "model_groups": {"g": {"deployments": ["held"]}}}
    with make_server(tmp_path, cfg) as s:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", timeout=30)
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="g", stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "go"}])
            rid = raw.headers["x-request-id"]
            chunks = list(raw.parse())  # returns at the gateway's [DONE]
            # The upstream has not been let go yet: the gateway ended the answer on its own.
            assert not up.done_sent.is_set()
        finally:
            up.release.set()
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "all of it"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
        assert up.finished.wait(10)
        # Exactly one log row, a success with the upstream's usage.
        db = s.server.config.app.gateway.request_log.path
        rows: list[tuple[int, int, int]] = []
        deadline = time.monotonic() + 5
        while not rows and time.monotonic() < deadline:
            time.sleep(0.1)
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT status, input_tokens, output_tokens FROM requests WHERE id = ?",
                                    (rid,)).fetchall()
        assert rows == [(200, 7, 3)]
        # The deployment still serves (its connection was either reused or replaced).
        up.release.set()
        again = client.chat.completions.create(model="g", stream=True, messages=[{"role": "user", "content": "x"}])
        assert "".join(c.choices[0].delta.content or "" for c in again if c.choices) == "all of it"
