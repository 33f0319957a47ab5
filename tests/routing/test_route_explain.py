"""Explain: `modelyard route ... --explain/--json` and POST /v1/route/explain over real HTTP, the
x-modelyard-route header, and the full decision in the request log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
from typer.testing import CliRunner

from conftest import make_server
from modelyard.cli import app

EXAMPLES = Path(__file__).parents[2] / "examples"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["route", *args], catch_exceptions=False)


def check_shape(d: dict) -> None:
    assert set(d) >= {"features", "candidates", "chosen", "strategy"}
    f = d["features"]
    assert {"task", "complexity", "input_tokens", "capabilities"} <= set(f) and isinstance(f["capabilities"], list)
    assert 0 <= f["complexity"] <= 1 and f["input_tokens"] > 0
    for c in d["candidates"]:
        assert set(c) == {"deployment", "eligible", "reason", "score"}
        assert isinstance(c["eligible"], bool) and isinstance(c["score"], float) and c["reason"]


def test_cli_json_is_one_object_on_the_default_fleet() -> None:
    r = run("Write a Python function that merges two sorted lists.", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)  # exactly one JSON document
    check_shape(d)
    assert d["model"] == "auto" and d["strategy"] == "rules" and d["rule"] == "code-math-reasoning"
    assert d["features"]["task"] == "code_generation" and d["chosen"] == "sim/balanced"
    assert {c["deployment"] for c in d["candidates"]} == {"sim/frontier", "sim/balanced", "sim/fast", "sim/local"}


def test_cli_explain_prints_features_verdicts_and_why() -> None:
    r = run("what is in this photo?", "--image", "https://example.com/cat.png", "-M", "tier=pro",
            "-M", "max_cost_usd=0.01", "--explain")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "capabilities needed: vision" in out and "tier=pro" in out
    assert "sim/fast" in out and "lacks vision" in out and "NO" in out
    assert "chosen     sim/" in out and "fallbacks" in out


def test_cli_metadata_config_and_plain_output() -> None:
    r = run("Draft our Q3 board memo", "--config", str(EXAMPLES / "routing-user-tiers.yaml"),
            "--metadata", "tier=enterprise", "--metadata", "task_value=high")
    assert r.exit_code == 0, r.output
    assert r.output.split()[0] in ("gpt-5", "claude-sonnet-4-5")
    assert "tier, rule enterprise/high -> frontier" in r.output
    r = run("x", "--metadata", "nonsense")
    assert r.exit_code == 2 and "key=value" in r.output


def test_cli_no_candidate_exits_1_and_says_why() -> None:
    r = run("hi", "--model", "fast", "--image", "https://x/y.png", "--json")
    assert r.exit_code == 1
    d = json.loads(r.output)
    assert d["chosen"] is None and "sim/fast: lacks vision" in d["error"]
    assert all(not c["eligible"] for c in d["candidates"])


def test_cli_bad_hint_and_unknown_model_are_errors() -> None:
    assert "modelyard.optimize_for" in run("hi", "-M", "optimize_for=vibes").output
    r = run("hi", "--model", "nope")
    assert r.exit_code == 2 and "unknown model 'nope'" in r.output


def test_explain_endpoint_header_and_request_log(tmp_path) -> None:
    body = {"messages": [{"role": "user", "content": "Prove rigorously, step by step, that there are infinitely "
                                                     "many primes, then derive a bound and justify each step."}],
            "metadata": {"tier": "pro"}}
    with make_server(tmp_path) as s, httpx.Client(base_url=s.url, timeout=10) as c:
        r = c.post("/v1/route/explain", json=body)
        assert r.status_code == 200, r.text
        d = r.json()
        check_shape(d)
        assert d["chosen"] == "sim/frontier" and d["rule"] == "hard" and d["features"]["tier"] == "pro"
        cli = json.loads(run(body["messages"][0]["content"], "-M", "tier=pro", "--json").output)
        assert cli == d  # the CLI and the endpoint say the same thing
        # no model was called: nothing in the request log for the explain call
        chat = c.post("/v1/chat/completions", json={"model": "auto", **body}, headers={"x-request-id": "req_r1"})
        assert chat.status_code == 200
        assert chat.headers["x-modelyard-route"] == "rules; rule=hard"
        assert chat.headers["x-modelyard-deployment"] == "sim/frontier"
        bad = c.post("/v1/route/explain", json={"model": "auto", "messages": "hi"})
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
        hint = c.post("/v1/route/explain", json={**body, "modelyard": {"min_quality": 7}})
        assert hint.status_code == 400 and hint.json()["error"]["param"] == "modelyard.min_quality"
        none = c.post("/v1/route/explain", json={**body, "model": "fast", "modelyard": {"tags": ["mars"]}})
        assert none.status_code == 200 and none.json()["chosen"] is None and "missing tags mars" in none.json()["error"]
        nc = c.post("/v1/chat/completions", json={**body, "model": "fast", "modelyard": {"tags": ["mars"]}})
        assert nc.status_code == 422 and nc.json()["error"]["type"] == "no_candidate"
        assert "sim/fast: missing tags mars" in nc.json()["error"]["message"]
    rows = sqlite3.connect(tmp_path / "requests.db").execute("SELECT id, route FROM requests").fetchall()
    logged = {rid: json.loads(route) if route else None for rid, route in rows}
    assert len(logged) == 2  # the chat and the 422, not the explain calls
    dec = logged["req_r1"]
    assert dec["chosen"] == "sim/frontier" and dec["strategy"] == "rules" and dec["rule"] == "hard"
    assert dec["features"]["task"] in ("math", "reasoning") and len(dec["candidates"]) == 4
    assert set(dec["candidates"][0]) == {"deployment", "eligible", "reason", "score"}
