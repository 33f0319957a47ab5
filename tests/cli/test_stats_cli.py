"""`modelyard stats` as a user runs it: against a running gateway and straight from a request log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from test_serve_cli import ENV

from conftest import make_server


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelyard.cli", "stats", *args], env={**ENV, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_stats_from_a_running_gateway_and_from_its_log(tmp_path: Path) -> None:
    with make_server(tmp_path, master_key="cli-key") as s:
        for model in ("sim/fast", "sim/fast", "auto", "smart"):
            assert httpx.post(s.url + "/v1/chat/completions", headers={"authorization": "Bearer cli-key"},
                              json={"model": model, "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
        r = _run("--url", s.url, "--key", "cli-key", "--json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["summary"]["requests"] == 4 and data["breakers"]["deployments"]
        assert {g["group"] for g in data["routing"]["groups"]} >= {"sim/fast", "auto", "smart"}
        table = _run("--url", s.url, "--key", "cli-key", cwd=tmp_path)
        assert table.returncode == 0 and "routing mix" in table.stdout and "spend by group" in table.stdout
        assert "breakers" in table.stdout and "sim/fast" in table.stdout
        refused = _run("--url", s.url, "--key", "wrong", cwd=tmp_path)
        assert refused.returncode == 2 and "refused the key" in refused.stderr and "Traceback" not in refused.stderr
    time.sleep(0.2)
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"server: {{request_log: {{path: {tmp_path / 'requests.db'}}}}}\n"
                   "deployments: {a: {provider: sim, model: sim/fast}}\n")
    r = _run("--config", str(cfg), "--window", "1h", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    logged = json.loads(r.stdout)
    assert logged["summary"]["requests"] == 4 and logged["summary"]["source"] == "log"
    assert logged["breakers"] is None


def test_stats_errors_are_clear(tmp_path: Path) -> None:
    r = _run("--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert r.returncode == 2 and "cannot reach" in r.stderr and "Traceback" not in r.stderr
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"server: {{request_log: {{path: {tmp_path / 'none.db'}}}}}\n"
                   "deployments: {a: {provider: sim, model: sim/fast}}\n")
    r = _run("--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and "no request log" in r.stderr
    r = _run("--config", str(cfg), "--window", "soon", cwd=tmp_path)
    assert r.returncode == 2 and "--window" in r.stderr
