"""Experiments over the real server: the official SDKs as clients, the sim fleet upstream, the request log
in SQLite — the header, the log column, the variant's deployment, feedback and judge scores in the report,
and the admin API the dashboard reads."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml
from expkit import config_data

from conftest import ServerThread, make_server
from modelyard.gateway import Gateway
from modelyard.loader import parse_config

KEY = "test-master-key"
SRC = str(Path(__file__).resolve().parents[2] / "src")
JUDGE = {"provider": "sim", "model": "sim-judge", "card": "sim/balanced",
         "sim": {"answers": {"Rate the answer": '{"score": 8, "reason": "correct and clear"}'}}}


def data(db: Path) -> dict[str, Any]:
    d = config_data({"metric": "feedback", "judge": {"model": "sim/judge", "sample_pct": 100}}, log_path=str(db))
    d["deployments"]["sim/judge"] = JUDGE
    return d


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("exp")
    cfg = data(tmp / "requests.db")
    with make_server(tmp, cfg, master_key=KEY) as s:
        yield s, tmp / "requests.db", cfg


_experiments: dict[int, Any] = {}


def expected_variant(cfg: dict[str, Any], user: str) -> str:
    """The variant the assignment gives `user`, computed here, apart from the server."""
    exp = _experiments.get(id(cfg))
    if exp is None:
        exp = _experiments[id(cfg)] = Gateway(parse_config(cfg, "x.yaml"), request_log=False).experiments["smart"]
    return exp.variant_for(user).name  # type: ignore[no-any-return]


def logged_rows(db: Path, rids: list[str]) -> dict[str, tuple[Any, ...]]:
    """(experiment, deployment, model) of each request's log row, once the log has written them all."""
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(db) as conn:
            rows = {r[0]: tuple(r[1:]) for r in conn.execute(
                f"SELECT id, experiment, deployment, model FROM requests WHERE id IN ({','.join('?' * len(rids))})",
                rids)}
        if len(rows) == len(set(rids)) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def logged(db: Path, rid: str) -> tuple[Any, ...]:
    return logged_rows(db, [rid])[rid]


def test_header_log_column_and_variant_deployment(served: tuple[ServerThread, Path, dict[str, Any]]) -> None:
    s, db, cfg = served
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=KEY, max_retries=0)
    seen: dict[str, str] = {}
    expected: dict[str, tuple[Any, ...]] = {}
    for i in range(40):
        user = f"user-{i}"
        raw = client.chat.completions.with_raw_response.create(
            model="smart", user=user, messages=[{"role": "user", "content": f"Summarise item {i} in a line."}])
        tag = raw.headers["x-modelyard-experiment"]
        name = tag.partition("=")[2]
        assert name == expected_variant(cfg, user)
        dep = raw.headers["x-modelyard-deployment"]
        assert dep == ("sim/fast" if name == "treatment" else "sim/frontier")  # the variant's override is served
        expected[raw.headers["x-request-id"]] = (tag, dep, "smart")
        seen[user] = name
    assert logged_rows(db, list(expected)) == expected  # every row carries its variant, like the header
    assert set(seen.values()) == {"control", "treatment"}
    # sticky: the same users again get the same variants
    for i in range(0, 40, 7):
        raw = client.chat.completions.with_raw_response.create(
            model="smart", user=f"user-{i}", messages=[{"role": "user", "content": "again"}])
        assert raw.headers["x-modelyard-experiment"] == f"cheaper={seen[f'user-{i}']}"


def test_stream_metadata_user_and_no_user(served: tuple[ServerThread, Path, dict[str, Any]]) -> None:
    s, db, cfg = served
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=KEY, max_retries=0)
    with client.chat.completions.with_streaming_response.create(
            model="smart", user="user-3", stream=True, messages=[{"role": "user", "content": "hi"}]) as resp:
        assert resp.headers["x-modelyard-experiment"] == f"cheaper={expected_variant(cfg, 'user-3')}"
        assert "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
        rid = resp.headers["x-request-id"]
    assert logged(db, rid)[0] == f"cheaper={expected_variant(cfg, 'user-3')}"
    raw = client.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "hi"}], extra_body={"metadata": {"user": "meta-user"}})
    assert raw.headers["x-modelyard-experiment"] == f"cheaper={expected_variant(cfg, 'meta-user')}"
    raw = client.chat.completions.with_raw_response.create(model="smart", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-modelyard-experiment"] == "cheaper=control; no user"
    assert raw.headers["x-modelyard-deployment"] == "sim/frontier"
    raw = client.chat.completions.with_raw_response.create(model="sim/fast", user="user-3",
                                                           messages=[{"role": "user", "content": "hi"}])
    assert "x-modelyard-experiment" not in raw.headers  # a deployment by name is outside the experiment
    assert logged(db, raw.headers["x-request-id"])[0] is None
    ant = anthropic.Anthropic(base_url=s.url, api_key=KEY, max_retries=0)
    araw = ant.messages.with_raw_response.create(model="smart", max_tokens=50, metadata={"user_id": "user-5"},
                                                 messages=[{"role": "user", "content": "hi"}])
    assert araw.headers["x-modelyard-experiment"] == f"cheaper={expected_variant(cfg, 'user-5')}"


def test_report_with_feedback_and_judge_scores(served: tuple[ServerThread, Path, dict[str, Any]]) -> None:
    s, db, cfg = served
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=KEY, max_retries=0)
    rids = []
    for i in range(12):
        raw = client.chat.completions.with_raw_response.create(
            model="smart", user=f"fb-{i}", messages=[{"role": "user", "content": f"Name a colour ({i})."}])
        rids.append((raw.headers["x-request-id"], raw.headers["x-modelyard-experiment"]))
    auth = {"Authorization": f"Bearer {KEY}"}
    for rid, tag in rids:
        score = 1.0 if tag.endswith("treatment") else 0.0
        r = httpx.post(f"{s.url}/v1/feedback", json={"request_id": rid, "score": score}, headers=auth, timeout=10)
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20  # the judge grades every answer (sample_pct 100) in the background
    judged = 0
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            marks = ",".join("?" * len(rids))
            judged = conn.execute(f"SELECT count(*) FROM experiment_scores WHERE request_id IN ({marks})",
                                  [r for r, _ in rids]).fetchone()[0]
        if judged == len(rids):
            break
        time.sleep(0.1)
    assert judged == len(rids)
    assert httpx.get(f"{s.url}/admin/experiments", timeout=10).status_code == 401
    r = httpx.get(f"{s.url}/admin/experiments", headers=auth, timeout=10)
    assert r.status_code == 200, r.text
    (exp,) = r.json()["experiments"]
    assert {k: exp[k] for k in ("name", "group", "unit", "metric")} == {
        "name": "cheaper", "group": "smart", "unit": "user", "metric": "feedback"}
    assert isinstance(exp["verdict"], str) and exp["verdict"] and exp["unassigned"] >= 1
    by = {v["name"]: v for v in exp["variants"]}
    for v in by.values():
        for field in ("requests", "success_rate", "success_rate_ci", "latency_p50_ms", "latency_p95_ms",
                      "cost_per_request_usd", "cost_per_request_usd_ci", "feedback_mean", "feedback_mean_ci",
                      "judge_mean", "judge_count"):
            assert field in v
        assert v["requests"] > 0 and v["success_rate"] == 1.0
        assert v["judge_mean"] == pytest.approx(7 / 9)  # 8 on 1..10, scaled to 0..1
    assert by["treatment"]["feedback_mean"] == 1.0 and by["control"]["feedback_mean"] == 0.0
    assert by["treatment"]["cost_per_request_usd"] < by["control"]["cost_per_request_usd"]  # sim/fast is cheaper
    assert by["treatment"]["overrides"] == {"deployments": ["sim/fast"]}
    one = httpx.get(f"{s.url}/admin/experiments/cheaper", headers=auth, timeout=10)
    assert one.status_code == 200 and one.json()["name"] == "cheaper"
    later = httpx.get(f"{s.url}/admin/experiments/cheaper?since={time.time() + 60}", headers=auth, timeout=10).json()
    assert all(v["requests"] == 0 for v in later["variants"])
    missing = httpx.get(f"{s.url}/admin/experiments/nope", headers=auth, timeout=10)
    assert missing.status_code == 404 and "no experiment 'nope'; configured: cheaper" in missing.text
    bad = httpx.get(f"{s.url}/admin/experiments/cheaper?since=soon", headers=auth, timeout=10)
    assert bad.status_code == 400 and "since" in bad.text

    # the CLI: from the running gateway, and from the config's request log
    env = {**os.environ, "PYTHONPATH": SRC}
    cli = [sys.executable, "-m", "modelyard.cli", "experiment", "report", "cheaper"]
    out = subprocess.run([*cli, "--url", s.url, "--key", KEY, "--json"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"name": "cheaper"' in out.stdout and '"verdict"' in out.stdout
    cfg_file = db.parent / "exp.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = subprocess.run([*cli, "--config", str(cfg_file)], env=env, capture_output=True, text=True, timeout=120,
                         cwd=db.parent)
    assert out.returncode == 0, out.stderr
    assert "experiment cheaper" in out.stdout and "verdict: " in out.stdout and "treatment" in out.stdout
    out = subprocess.run([*cli, "--url", s.url], env={**env, "MODELYARD_MASTER_KEY": ""}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "401" in out.stderr
