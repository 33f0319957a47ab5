"""Helpers for the scale-out tests: `modelyard serve` processes sharing one redis-server."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

MASTER = "scale-master-key-0123456789"
KEYS = {"RPM_KEY": "sk-rpm-key-0123456789", "BUDGET_KEY": "sk-budget-key-0123456789",
        "CACHE_KEY": "sk-cache-key-0123456789", "LOAD_KEY": "sk-load-key-0123456789",
        "LIMITED_KEY": "sk-limited-key-0123456789"}
RPM = 12
BUDGET_USD = 0.001


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, state: Any, log: Path, *, cache: bool = True, budget: float = BUDGET_USD) -> Path:
    data: dict[str, Any] = {
        "state": state,
        "server": {"master_key": "env:SCALE_MASTER", "request_log": {"path": str(log)}},
        "deployments": {
            "sim/fast": {"provider": "sim", "model": "sim/fast"},
            "flaky": {"provider": "sim", "model": "sim/fast", "card": "sim/fast", "sim": {"failure_rate": 1.0}},
        },
        "model_groups": {"fast": {"deployments": ["sim/fast"]}},
        "resilience": {"retry": {"max_attempts": 1}, "breaker": {"cooldown_s": 60}},
        "keys": {
            "rpm": {"key": "env:RPM_KEY", "rpm": RPM},
            "budget": {"key": "env:BUDGET_KEY", "budget_usd": budget, "budget_period": "total"},
            "cache": {"key": "env:CACHE_KEY"},
            "load": {"key": "env:LOAD_KEY", "budget_usd": 1000.0, "budget_period": "total", "rpm": 100000},
            "limited": {"key": "env:LIMITED_KEY", "rpm": 100000},
        },
    }
    if cache:
        data["cache"] = {"mode": "exact", "backend": "redis"}
    path.write_text(yaml.safe_dump(data))
    return path


def env() -> dict[str, str]:
    e = {**os.environ, "SCALE_MASTER": MASTER, "MODELYARD_SIM_ZERO_LATENCY": "1", **KEYS}
    e["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    return e


class Serve:
    """One `modelyard serve` process."""

    def __init__(self, config: Path, cwd: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--config", str(config), "--port", str(self.port)]
        if workers > 1:
            args += ["--workers", str(workers)]
        # output to a file, not a pipe: a pipe nobody drains fills up with request lines and the server
        # blocks writing to it
        self.log_path = cwd / f"serve-{self.port}.out"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli", *args], cwd=cwd, env=env(), text=True,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.output = ""

    def wait_ready(self, timeout: float = 60) -> Serve:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become ready")

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        self.output = self.log_path.read_text()
        return self.output


def body(text: str = "hello", model: str = "sim/fast") -> dict[str, Any]:
    return {"model": model, "max_tokens": 40, "messages": [{"role": "user", "content": text}]}


def logged(db: Path, key_name: str) -> list[tuple[int, float, str | None]]:
    """(status, cost_usd, error_type) of every logged request of a config key."""
    from modelyard.accounting.keys import CONFIG_ID_PREFIX

    with sqlite3.connect(db) as c:
        return list(c.execute("SELECT status, cost_usd, error_type FROM requests WHERE key_id = ?",
                              (CONFIG_ID_PREFIX + key_name,)))
