"""A client that leaves before the first byte — streamed or not — cancels the upstream call at
once, and the request is logged with status 499."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from aiohttp import web
from kit import GuardedServer, Upstream, one_deployment


class StalledUpstream:
    """Takes every request and never answers; records when the gateway closes the connection
    (aiohttp does not cancel a handler whose client left: the transport is polled)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.server = Upstream(self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.started.set()
        for _ in range(600):
            if request.transport is None or request.transport.is_closing():
                self.cancelled.set()
                break
            await asyncio.sleep(0.05)
        return web.json_response({})


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_before_the_first_byte_cancels_the_upstream_and_logs_499(tmp_path, stream) -> None:
    up = StalledUpstream()
    with GuardedServer(tmp_path, one_deployment(up.server.api_base)) as s:
        body = {"model": "g", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(s.url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(10, read=0.5))
        left = time.monotonic()
        assert up.started.is_set()
        assert up.cancelled.wait(5), "the upstream call kept running after the client left"
        assert time.monotonic() - left < 1.0
        rows = s.log_rows(1)
        assert [r[0] for r in rows] == [499]
