"""A client that goes away mid-stream cancels the upstream call; the partial stream is logged."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import httpx
import orjson
from aiohttp import web
from upstreamkit import ThreadedUpstream

from conftest import make_server


class SlowUpstream:
    """An OpenAI-format server that streams one chunk every 50 ms and records disconnects."""

    def __init__(self) -> None:
        self.disconnected = threading.Event()
        self.chunks_sent = 0
        self.server = ThreadedUpstream(self.handle)
        self.port = self.server.port

    async def handle(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(200):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "slow",
                         "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]}
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                self.chunks_sent += 1
                await asyncio.sleep(0.05)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise
        return resp


def test_client_disconnect_cancels_upstream_and_logs_partial_usage(tmp_path) -> None:
    up = SlowUpstream()
    cfg = {"deployments": {"slow": {"provider": "openai", "model": "slow",
                                    "api_base": f"http://127.0.0.1:{up.port}/v1"}},
           "model_groups": {"g": {"deployments": ["slow"]}}}
    with make_server(tmp_path, cfg) as s:
        with httpx.stream("POST", s.url + "/v1/chat/completions", timeout=10,
                          json={"model": "g", "stream": True, "messages": [{"role": "user", "content": "go"}]}) as r:
            rid = r.headers["x-request-id"]
            seen = 0
            for line in r.iter_lines():
                if line.startswith("data:"):
                    seen += 1
                if seen >= 3:
                    break  # leaving the block closes the connection mid-stream
        assert up.disconnected.wait(5), "upstream never saw the disconnect"
        sent_at_disconnect = up.chunks_sent
        time.sleep(0.3)
        assert up.chunks_sent == sent_at_disconnect < 200
        db = s.server.config.app.gateway.request_log.path
        row = None
        deadline = time.monotonic() + 5
        while row is None and time.monotonic() < deadline:
            time.sleep(0.1)
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT status, output_tokens, stream FROM requests WHERE id = ?",
                                   (rid,)).fetchone()
    assert row is not None and row[0] == 499 and row[1] > 0 and row[2] == 1
