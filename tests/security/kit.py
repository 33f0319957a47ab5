"""The gateway as `modelyard serve` runs it (its uvicorn settings: server/protocol.py) on loopback,
and a scripted OpenAI-format upstream, for the hostile-client tests."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from conftest import ServerThread


class GuardedServer(ServerThread):
    """ServerThread with the serve command's protocol and limits instead of uvicorn's defaults."""

    def __init__(self, tmp_path: Path, config: dict[str, Any], **app_kw: Any) -> None:
        import uvicorn

        from modelyard.cli.serve import server_options
        from modelyard.gateway import Gateway
        from modelyard.loader import parse_config
        from modelyard.server.app import create_app

        config.setdefault("server", {}).setdefault("request_log", {})["path"] = str(tmp_path / "requests.db")
        gw = Gateway(parse_config(config, "test-config.yaml"), source="test-config.yaml")
        self.app = create_app(gw, **app_kw)
        self.db = gw.request_log.path if gw.request_log is not None else None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        opts = {**server_options(gw.config.server), "loop": "none"}  # (the thread makes its own uvloop)
        self.server = uvicorn.Server(uvicorn.Config(self.app, **opts))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return s

    def log_rows(self, n: int, timeout: float = 5) -> list[tuple[Any, ...]]:
        """The request log's rows (status, error), once there are `n` of them."""
        assert self.db is not None
        deadline = time.monotonic() + timeout
        rows: list[tuple[Any, ...]] = []
        while time.monotonic() < deadline:
            with sqlite3.connect(self.db) as conn:
                try:
                    rows = conn.execute("SELECT status, error FROM requests ORDER BY ts").fetchall()
                except sqlite3.OperationalError:  # not created yet
                    rows = []
            if len(rows) >= n:
                return rows
            time.sleep(0.05)
        return rows


def read_response(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection. A server that closes with bytes of
    ours still unread resets the connection instead (the kernel's rule), after what it sent."""
    out = b""
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


class Upstream:
    """An OpenAI-format server on its own thread: `handle` answers POST /v1/chat/completions."""

    def __init__(self, handle: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.handle = handle
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        assert ready.wait(5)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self.handle)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()


ANSWER = {"id": "c", "object": "chat.completion", "created": 1, "model": "up",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def one_deployment(api_base: str, **server: Any) -> dict[str, Any]:
    return {"server": server, "deployments": {"up": {"provider": "openai", "model": "up", "api_base": api_base}},
            "model_groups": {"g": {"deployments": ["up"]}}}
