"""`modelyard serve` as a user runs it: metrics that add up across two worker processes, and one JSON
log line per request without secrets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelyard.telemetry.metrics import FLUSH_EVERY_S

KEY = "serve-master-key-1234567890"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "modelyard.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(proc: subprocess.Popen[str], url: str, timeout: float = 60) -> None:
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
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return out


def requests_total(text: str, name: str = "modelyard_requests_total", **labels: str) -> float:
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_two_workers_counters_add_up_and_json_lines(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_KEY}}
  request_log: {{path: {tmp_path / 'requests.db'}}}
deployments:
  a: {{provider: sim, model: sim/fast}}
  b: {{provider: sim, model: sim/fast}}
model_groups:
  fast: {{deployments: [a, b]}}
""")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "MODELYARD_SIM_ZERO_LATENCY": "1", "MODELYARD_NO_OLLAMA": "1", "TEST_KEY": KEY,
           "TMPDIR": str(tmpdir)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = start(["serve", "--config", str(cfg), "--port", str(port), "--workers", "2", "--log-format", "json"],
                 tmp_path, env)
    try:
        wait_ready(proc, url)
        auth = {"Authorization": f"Bearer {KEY}"}
        sent, prefixes = 40, set()
        for i in range(sent):  # a new connection each: the kernel spreads them over the workers
            r = httpx.post(url + "/v1/chat/completions", headers={**auth, "connection": "close"}, timeout=30,
                           json={"model": "fast", "messages": [{"role": "user", "content": f"hello {i}"}]})
            assert r.status_code == 200, r.text
            prefixes.add(r.headers["x-request-id"][:16])  # req_ + a random prefix per process
        bad = httpx.post(url + "/v1/chat/completions", headers=auth, timeout=30,
                         json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        assert bad.status_code == 404
        assert len(prefixes) == 2, "both workers should have served requests"
        time.sleep(FLUSH_EVERY_S + 0.5)  # each worker's counts reach the shared files within FLUSH_EVERY_S
        for _ in range(6):  # whichever worker answers the scrape, the sums are the same
            text = httpx.get(url + "/metrics", headers={**auth, "connection": "close"}, timeout=10).text
            assert requests_total(text, group="fast", status="2xx") == sent
            assert requests_total(text, group="other", status="4xx") == 1
            assert requests_total(text, "modelyard_request_duration_seconds_count", group="fast") == sent
            assert requests_total(text, "modelyard_tokens_total", group="fast", kind="input") > 0
        assert any(d.name.startswith("modelyard-metrics-") for d in tmpdir.iterdir())
    finally:
        out = stop(proc)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    reqs = [x for x in lines if x.get("logger") == "modelyard.requests"]
    assert len(reqs) == sent + 1, out[-2000:]
    ok = [x for x in reqs if x["status"] == 200]
    assert {x["group"] for x in ok} == {"fast"} and {x["deployment"] for x in ok} <= {"a", "b"}
    for x in ok:
        assert x["request_id"].startswith("req_") and x["latency_ms"] >= 0 and x["input_tokens"] > 0
        assert x["cost_usd"] > 0 and x["level"] == "info" and "fallbacks" in x and "cache" in x
    err = next(x for x in reqs if x["status"] == 404)
    assert err["error_type"] == "not_found_error"
    assert KEY not in out
    assert not any(d.name.startswith("modelyard-metrics-") for d in tmpdir.iterdir()), "metrics dir left behind"


def test_a_console_nobody_reads_does_not_stall_the_gateway(tmp_path: Path) -> None:
    """stdout and stderr go to a pipe that is never read (a stalled log collector): once it is full
    (64 KiB), request lines are dropped, and the event loop's own warnings (uvicorn's, for a
    malformed request) never wait on the blocked console: requests keep being answered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"server:\n  request_log: {{path: {tmp_path / 'requests.db'}}}\n"
                   "deployments:\n  a: {provider: sim, model: sim/fast}\n")
    env = {**os.environ, "MODELYARD_SIM_ZERO_LATENCY": "1", "MODELYARD_NO_OLLAMA": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = start(["serve", "--config", str(cfg), "--port", str(port)], tmp_path, env)  # stdout: a pipe, never read
    try:
        wait_ready(proc, url)
        body = {"model": "a", "messages": [{"role": "user", "content": "hello"}]}
        with httpx.Client(base_url=url, timeout=10) as client:
            # ~120 bytes a line: 1,200 requests write well over the pipe's 64 KiB
            for i in range(1200):
                r = client.post("/v1/chat/completions", json=body)  # (a stalled loop: httpx.ReadTimeout)
                assert r.status_code == 200, r.text
                if i % 50 == 0:
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                        s.sendall(b"NOT HTTP\r\n\r\n")  # uvicorn logs a warning from the event loop
                        s.recv(1024)
            text = client.get("/metrics").text
        assert requests_total(text, group="a", status="2xx") == 1200
        assert "modelyard_log_lines_dropped_total" in text
    finally:
        out = stop(proc)  # reading the pipe now unblocks the console
    assert "Invalid HTTP request" in out
