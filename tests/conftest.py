"""Shared fixtures: a real gateway server on loopback, answered by the simulated fleet."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MODELYARD_SIM_ZERO_LATENCY", "1")
os.environ.setdefault("MODELYARD_NO_OLLAMA", "1")
# provider keys put real deployments into the embedded groups: tests never call a real provider (the
# tests of that behaviour set the variables themselves, pointing at a fake upstream on loopback)
for _var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",
             "GEMINI_BASE_URL"):
    os.environ.pop(_var, None)
if "MODELYARD_CACHE_DIR" not in os.environ:  # derived model graphs: built per test session, not into ~/.cache
    os.environ["MODELYARD_CACHE_DIR"] = tempfile.mkdtemp(prefix="modelyard-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MODELYARD_CACHE_DIR"], True)


# Router training data comes from ../shared/data (MMLU-derived: evaluation material stays out of the
# repo): the learned-routing tests train on every 35th line of it, written to a temporary file.
def _shared_routing() -> Path:
    """../shared beside the checkout, or beside the main checkout when this one is a git worktree."""
    root = Path(__file__).resolve().parents[1]
    tail = Path("shared") / "data" / "routing" / "mmlu_train.jsonl"
    found = root.parent / tail
    if not found.exists() and (root / ".git").is_file():  # a worktree: .git names the main repository
        gitdir = Path((root / ".git").read_text().split(":", 1)[1].strip())
        main = gitdir.parents[2] if gitdir.parent.name == "worktrees" else root
        found = main.parent / tail
    return found


SHARED_ROUTING = _shared_routing()
if "MODELYARD_TEST_ROUTING_SMALL" not in os.environ:
    _small = Path(tempfile.mkdtemp(prefix="modelyard-test-data-")) / "routing_train_small.jsonl"
    atexit.register(shutil.rmtree, str(_small.parent), True)
    if SHARED_ROUTING.exists():
        _small.write_text("".join(SHARED_ROUTING.read_text().splitlines(keepends=True)[::35]))
    os.environ["MODELYARD_TEST_ROUTING_SMALL"] = str(_small)


_DEMO_LOG = Path("modelyard.db").resolve()  # the request log `make demo` writes, in the directory tests run from


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


@pytest.fixture(scope="session", autouse=True)
def _run_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests run in a temporary directory: a gateway on a config without a request-log path (the
    examples, a file config) writes its `modelyard.db` there, not into the checkout."""
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(here)


@pytest.fixture(autouse=True)
def _no_rows_in_the_demo_log() -> Iterator[None]:
    """Tests log into temporary directories: a test that writes ./modelyard.db fails, named."""
    before = _stamp(_DEMO_LOG)
    yield
    if _stamp(_DEMO_LOG) != before:
        pytest.fail(f"this test wrote into {_DEMO_LOG}: give its gateway a request_log path under tmp_path "
                    "(or request_log=False)")


class ServerThread:
    """Runs the real ASGI app in a background thread as `modelyard serve` does: uvicorn on uvloop
    with the gateway's HTTP/1.1 protocol and its limits (server/protocol.py), of `server` or the
    default server config."""

    def __init__(self, app: Any, server: Any = None) -> None:
        import uvicorn

        from modelyard.config import ServerConfig
        from modelyard.server.protocol import uvicorn_options

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, **uvicorn_options(server if server is not None else ServerConfig()))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        loop.close()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def make_server(tmp_path: Path, config: dict[str, Any] | None = None, **app_kw: Any) -> ServerThread:
    from modelyard.defaults import default_config_data
    from modelyard.gateway import Gateway
    from modelyard.loader import parse_config
    from modelyard.server.app import create_app

    data = config if config is not None else default_config_data(sim_only=True)
    data.setdefault("server", {}).setdefault("request_log", {})["path"] = str(tmp_path / "requests.db")
    gw = Gateway(parse_config(data, "test-config.yaml"), source="test-config.yaml")
    return ServerThread(create_app(gw, **app_kw), gw.config.server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The gateway on its embedded sim fleet, no master key."""
    with make_server(tmp_path_factory.mktemp("gw")) as s:
        yield s


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The gateway with master key 'test-master-key'."""
    with make_server(tmp_path_factory.mktemp("gwk"), master_key="test-master-key") as s:
        yield s


class RedisServer:
    """A real `redis-server` on a free loopback port in a temporary directory (no persistence)."""

    BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Any = None

    def start(self) -> RedisServer:
        import subprocess

        self.proc = subprocess.Popen(
            [self.BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def _redis(directory: Path) -> Iterator[RedisServer]:
    if not os.path.exists(RedisServer.BINARY):
        pytest.skip("redis-server is not installed (apt-get install redis-server, or `make dev`)")
    srv = RedisServer(directory).start()
    yield srv
    srv.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test; skipped (with the reason) when the binary is absent."""
    yield from _redis(tmp_path)


@pytest.fixture(scope="module")
def redis_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server shared by a test module's tests."""
    yield from _redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture(params=["loop", "wreq"])
def each_client(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test once per upstream client: the fake upstreams are plain http://, which the in-loop
    client calls by default; `wreq` is what every https:// upstream goes through."""
    from modelyard.providers.http import configure_plain_http

    configure_plain_http(request.param)
    yield request.param
    configure_plain_http("loop")
