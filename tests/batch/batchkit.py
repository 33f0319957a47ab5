"""Shared bits of the batch tests: writing inputs, running `modelyard batch` as a user does, reading
results."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

KEY = "sk-batch-test-master-key"
ENV = {**os.environ, "MODELYARD_SIM_ZERO_LATENCY": "1", "MODELYARD_NO_OLLAMA": "1", "COLUMNS": "200"}
SIM_CONFIG = """
server:
  request_log: {path: log.db}
deployments:
  sim/fast: {provider: sim, model: sim/fast}
  sim/balanced: {provider: sim, model: sim/balanced}
model_groups:
  auto: {deployments: [sim/fast, sim/balanced]}
"""


def plain(i: int, model: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"messages": [{"role": "user", "content": f"What is {i} + 1?"}]}
    if model:
        line["model"] = model
    return line


def openai_line(cid: str, i: int, model: str = "auto") -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"Say hello, number {i}"}],
                     "max_tokens": 50}}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    with path.open("w") as f:
        for line in lines:
            f.write(line if isinstance(line, str) else json.dumps(line))
            f.write("\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(raw) for raw in path.read_text().splitlines() if raw.strip()]


def sim_config(tmp: Path) -> Path:
    cfg = tmp / "gw.yaml"
    cfg.write_text(SIM_CONFIG)
    return cfg


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelyard.cli", "batch", *args]


def run_batch(tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), cwd=tmp, env=env or ENV, text=True, capture_output=True,
                          timeout=timeout)


class RateLimitedUpstream:
    """An OpenAI-format upstream on loopback (aiohttp, its own thread) that serves `capacity`
    requests at a time and answers the rest 429 with Retry-After, as OpenAI does. It records when
    each request arrived and when each 429 went out (monotonic seconds), and the most it served at once."""

    def __init__(self, capacity: int, retry_after: int = 1, service_s: float = 0.03) -> None:
        import asyncio
        import threading

        self.capacity, self.retry_after, self.service_s = capacity, retry_after, service_s
        self.inflight = self.peak_inflight = 0
        self.arrivals: list[float] = []
        self.rejections: list[float] = []
        self.served = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, ready: Any) -> None:
        import asyncio

        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: Any) -> Any:
        import asyncio
        import time

        from aiohttp import web

        now = time.monotonic()
        self.arrivals.append(now)
        body = await request.json()
        if self.inflight >= self.capacity:
            self.rejections.append(now)
            return web.json_response(
                {"error": {"message": "Rate limit reached for requests", "type": "requests",
                           "param": None, "code": "rate_limit_exceeded"}},
                status=429, headers={"retry-after": str(self.retry_after)})
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        try:
            await asyncio.sleep(self.service_s)
        finally:
            self.inflight -= 1
        self.served += 1
        text = "ok: " + body["messages"][-1]["content"]
        return web.json_response({
            "id": f"chatcmpl-{self.served}", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


@contextlib.contextmanager
def serving(tmp_path: Path, config: str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `modelyard serve --config <config> ARGS` on a loopback port (master key KEY); its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(config.replace("server:\n", "server:\n  master_key: ${BATCH_TEST_KEY}\n"))
    proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(cfg), "--port", str(port),
                             *args], cwd=tmp_path, env={**(env or ENV), "BATCH_TEST_KEY": KEY}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


@pytest.fixture(name="server")
def serve_fixture(tmp_path: Path) -> Iterator[str]:
    """A real `modelyard serve` on a loopback port (sim fleet, master key KEY); its URL."""
    with serving(tmp_path, SIM_CONFIG) as url:
        yield url
