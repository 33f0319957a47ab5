"""`modelyard serve` has the app report its in-flight count to the upstream I/O threads
(providers/io_threads.py): with requests piling up they are batch-scheduled, and back to normal
once it is idle again."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from aiohttp import web
from upstreamkit import ThreadedUpstream

from conftest import make_server
from modelyard.providers import io_threads
from modelyard.providers.http import configure_plain_http

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread scheduling is Linux's")


@pytest.fixture()
def wreq_for_plain_http() -> Iterator[None]:
    """The I/O threads are wreq's: have it call the http:// fake upstream too."""
    configure_plain_http("wreq")
    yield
    configure_plain_http("loop")


def test_the_server_makes_the_threads_batch_while_requests_pile_up(tmp_path, wreq_for_plain_http) -> None:
    up = HeldUpstream()
    cfg = {"deployments": {"held": {"provider": "openai", "model": "held", "api_base": up.server.api_base}},
           "model_groups": {"g": {"deployments": ["held"]}}}
    with make_server(tmp_path, cfg, on_inflight=io_threads.follow) as s:
        body = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=s.url) as client:
            assert client.post("/v1/chat/completions", json=body).status_code == 200  # one: stays normal
        assert set(io_threads.threads().values()) == {os.SCHED_OTHER}
        up.hold.clear()
        with ThreadPoolExecutor(io_threads.BUSY_AT) as pool:
            calls = [pool.submit(httpx.post, s.url + "/v1/chat/completions", json=body, timeout=30)
                     for _ in range(io_threads.BUSY_AT)]
            assert up.waiting.wait(10)
            assert set(io_threads.threads().values()) == {os.SCHED_BATCH}
            up.hold.set()
            assert [c.result().status_code for c in calls] == [200] * io_threads.BUSY_AT
        deadline = time.monotonic() + 5
        while set(io_threads.threads().values()) != {os.SCHED_OTHER} and time.monotonic() < deadline:
            time.sleep(0.01)
        assert set(io_threads.threads().values()) == {os.SCHED_OTHER}


class HeldUpstream:
    """Answers at once while `hold` is set; otherwise holds each request until it is, and sets
    `waiting` once BUSY_AT of them are held."""

    ANSWER = {"id": "c", "object": "chat.completion", "created": 1, "model": "held",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.hold.set()
        self.waiting = threading.Event()
        self.held = 0
        self.server = ThreadedUpstream(self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if not self.hold.is_set():
            self.held += 1
            if self.held == io_threads.BUSY_AT:
                self.waiting.set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 10)
        return web.json_response(self.ANSWER)
