"""`modelyard serve` / `demo` / `chat` / `models` as a user runs them: real processes, real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ENV = {**os.environ, "MODELYARD_SIM_ZERO_LATENCY": "1", "MODELYARD_NO_OLLAMA": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "modelyard.cli", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(proc: subprocess.Popen[str], url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def stop(proc: subprocess.Popen[str]) -> str:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_with_config_and_workers(tmp_path, workers) -> None:
    port = free_port()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_KEY}}
  request_log: {{path: {tmp_path / 'log.db'}}}
deployments:
  a: {{provider: sim, model: sim/fast}}
model_groups:
  quick: {{deployments: [a]}}
""")
    ENV["TEST_KEY"] = "k-123"
    proc = start(["serve", "--config", str(cfg), "--port", str(port), "--workers", str(workers)], tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url)
        for _ in range(4):
            r = httpx.post(url + "/v1/chat/completions", headers={"authorization": "Bearer k-123"},
                           json={"model": "quick", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
            assert r.status_code == 200 and r.headers["x-modelyard-deployment"] == "a"
        assert httpx.post(url + "/v1/chat/completions", json={"model": "quick", "messages": []},
                          timeout=10).status_code == 401
    finally:
        out = stop(proc)
    assert "Traceback" not in out
    assert "k-123" not in out


def test_serve_bad_config_exits_2_naming_field(tmp_path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("deployments:\n  a: {provider: sim, model: x, weight: lots}\n")
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(cfg)], env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"{cfg}: deployments.a.weight:" in r.stderr and "Traceback" not in r.stderr


def test_demo_serves_sim_fleet_and_prints_how_to_call(tmp_path) -> None:
    port = free_port()
    proc = start(["demo", "--port", str(port), "--traffic", "3"], tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url)
        r = httpx.post(url + "/v1/chat/completions",
                       json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]}, timeout=10)
        assert r.status_code == 200 and r.headers["x-modelyard-deployment"].startswith("sim/")
        time.sleep(0.5)
    finally:
        out = stop(proc)
    assert f"http://127.0.0.1:{port}" in out and "curl" in out
    assert "sample 3/3" in out


def test_chat_and_models_commands(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "chat", "What is 2+2?", "--model", "smart"],
                       env=ENV, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "deployment sim/frontier" in r.stderr and "$" in r.stderr
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "models"], env={**ENV, "COLUMNS": "200"},
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and "sim/frontier" in r.stdout and "2.50" in r.stdout
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "chat", "hi", "--model", "nope"], env=ENV,
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1 and "unknown model 'nope'" in r.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_applies_the_connection_limits_in_every_worker(tmp_path, workers) -> None:
    port = free_port()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"""
server:
  header_timeout_s: 0.5
  max_headers: 10
  request_log: {{path: {tmp_path / 'log.db'}}}
deployments:
  a: {{provider: sim, model: sim/fast}}
""")
    proc = start(["serve", "--config", str(cfg), "--port", str(port), "--workers", str(workers)], tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url)
        for _ in range(2 * workers):  # (connections are spread over the workers)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
                assert idle.recv(100).startswith(b"HTTP/1.1 408 ")
            headers = {f"x-h{i}": "v" for i in range(20)}
            assert httpx.get(url + "/health", headers=headers, timeout=10).status_code == 431
    finally:
        out = stop(proc)
    assert "Traceback" not in out


def test_serve_refuses_a_non_loopback_address_without_a_master_key(tmp_path) -> None:
    cfg = tmp_path / "open.yaml"
    cfg.write_text("deployments:\n  a: {provider: sim, model: x}\n")
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(cfg), "--host", "0.0.0.0",
                        "--port", str(free_port())], env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "refusing to serve on 0.0.0.0 without a master key" in r.stderr and "--allow-unauthenticated" in r.stderr


def test_serve_on_a_non_loopback_address_without_a_key_when_told_to(tmp_path) -> None:
    cfg = tmp_path / "open.yaml"
    cfg.write_text("deployments:\n  a: {provider: sim, model: x}\n")
    port = free_port()
    proc = start(["serve", "--config", str(cfg), "--host", "0.0.0.0", "--port", str(port), "--allow-unauthenticated"],
                 tmp_path)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


def test_loopback_addresses() -> None:
    from modelyard.cli.serve import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "gateway.example"))
