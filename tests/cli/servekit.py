"""A real `modelyard serve` process for the CLI's `--url` mode (master key from MODELYARD_MASTER_KEY)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from typer.testing import CliRunner

from modelyard.cli import app

KEY = "sk-principals-test-master-key"
ENV = {**os.environ, "MODELYARD_SIM_ZERO_LATENCY": "1", "MODELYARD_NO_OLLAMA": "1", "COLUMNS": "200"}


def config_file(tmp_path: Path, master: bool) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n" + ("  master_key: ${PRINCIPALS_TEST_KEY}\n" if master else "")
                   + f"  request_log: {{path: {tmp_path / 'log.db'}}}\n"
                   "deployments:\n  a: {provider: sim, model: sim/fast}\n")
    return cfg


@contextlib.contextmanager
def serve(tmp_path: Path) -> Iterator[str]:
    """A real `modelyard serve` on a loopback port with a master key; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config_file(tmp_path, True)
    proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(cfg), "--port", str(port)],
                            cwd=tmp_path, env={**ENV, "PRINCIPALS_TEST_KEY": KEY}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
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


def cli(*args: str, key: str | None = KEY) -> tuple[int, str]:
    env = {"MODELYARD_MASTER_KEY": key} if key else {}
    r = CliRunner().invoke(app, list(args), env={**env, "COLUMNS": "200"})
    return r.exit_code, r.output
