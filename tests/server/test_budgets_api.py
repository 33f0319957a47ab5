"""GET /admin/budgets and `modelyard_budget_used_ratio` on the real server: every budget scope (a key
from the config, keys, teams and users from the API) with its standing after budgeted traffic, and
the same figures read back from the request log after a restart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import make_server
from modelyard.defaults import default_config_data

MASTER = "budget-master-key"
CFG_KEY = "sk-my-config-budget-key-aaaaaaaaaaaaaaaaa"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def _config() -> dict[str, Any]:
    cfg = default_config_data(sim_only=True)
    cfg["keys"] = {"ops": {"key": "env:BUDGET_TEST_CFG_KEY", "budget_usd": 5.0, "budget_period": "daily",
                           "soft_budget_pct": 50}}
    return cfg


def _chat(url: str, key: str, n: int) -> None:
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {key}"}) as c:
        for i in range(n):
            r = c.post(url + "/v1/chat/completions", json={"model": "smart", "max_tokens": 200, "messages": [
                {"role": "user", "content": f"explain budgets, part {i}, in some detail " * 20}]})
            assert r.status_code == 200, r.text


def _budgets(url: str, **params: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(url + "/admin/budgets", headers=ADMIN, params=params)
    assert r.status_code == 200, r.text
    return {b["scope"]: b for b in r.json()["budgets"]}


def test_budgets_endpoint_and_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET_TEST_CFG_KEY", CFG_KEY)
    with make_server(tmp_path, _config(), master_key=MASTER) as s:
        url = s.url
        assert httpx.post(url + "/admin/teams", headers=ADMIN, json={"name": "research", "budget_usd": 2.0,
                                                                     "budget_period": "monthly"}).status_code == 201
        assert httpx.post(url + "/admin/users", headers=ADMIN, json={"name": "ana", "budget_usd": 1.0,
                                                                     "budget_period": "total"}).status_code == 201
        made = httpx.post(url + "/admin/keys", headers=ADMIN, json={"name": "lab", "team": "research", "user": "ana",
                                                                     "budget_usd": 0.5}).json()
        no_budget = httpx.post(url + "/admin/keys", headers=ADMIN, json={"name": "free"}).json()
        _chat(url, made["key"], 6)
        _chat(url, CFG_KEY, 2)

        b = _budgets(url)
        key, cfg, team, user = (b[f"key:{made['id']}"], b["key:cfg_ops"], b["team:research"], b["user:ana"])
        assert f"key:{no_budget['id']}" not in b and len(b) == 4
        assert key["source"] == "api" and cfg["source"] == "config" and cfg["key_name"] == "ops"
        assert key["limit_usd"] == 0.5 and key["period"] == "monthly" and team["period"] == "monthly"
        assert key["spent_usd"] > 0 and key["reserved_usd"] == 0  # settled: nothing in flight
        assert key["spent_usd"] == pytest.approx(team["spent_usd"]) == pytest.approx(user["spent_usd"])
        assert key["used_ratio"] == pytest.approx(key["spent_usd"] / 0.5, rel=1e-4)
        assert key["remaining_usd"] == pytest.approx(0.5 - key["spent_usd"], abs=1e-6)
        assert key["spend_from"] == "ledger" and key["state"] in ("ok", "exceeded")
        assert key["soft_pct"] is None and key["soft_limit_reached"] is None
        assert cfg["soft_pct"] == 50 and cfg["soft_limit_reached"] is False and cfg["state"] == "ok"
        assert user["resets_at"] is None  # period: total
        today = dt.datetime.now(dt.UTC).date()
        assert dt.datetime.fromisoformat(cfg["resets_at"]).date() == today + dt.timedelta(days=1)
        assert dt.datetime.fromisoformat(key["resets_at"]).day == 1

        assert set(_budgets(url, kind="team")) == {"team:research"}
        assert httpx.get(url + "/admin/budgets?kind=org", headers=ADMIN).json()["error"]["param"] == "kind"
        assert httpx.get(url + "/admin/budgets",
                         headers={"authorization": f"Bearer {made['key']}"}).status_code == 403

        text = httpx.get(url + "/metrics", headers=ADMIN).text
        ratios = {s.labels["scope"]: s.value for f in text_string_to_metric_families(text)
                  if f.name == "modelyard_budget_used_ratio" for s in f.samples}
        assert set(ratios) == {"key", "team", "user"}  # the kind, never an id
        assert ratios["key"] == pytest.approx(max(key["used_ratio"], cfg["used_ratio"]), rel=1e-3)
        assert ratios["team"] == pytest.approx(team["used_ratio"], rel=1e-3)
        before = b

    # a new process on the same database: the spend comes from the request log, and reading it
    # seeds no ledger (budgets stay enforced from the log the first time the scope is used)
    with make_server(tmp_path, _config(), master_key=MASTER) as s:
        after = _budgets(s.url)
        for scope in before:
            assert after[scope]["spend_from"] == "log"
            assert after[scope]["spent_usd"] == pytest.approx(before[scope]["spent_usd"], rel=1e-6), scope
        acct = s.server.config.app.gateway.accounting  # type: ignore[attr-defined]
        assert not any(acct.budgets.store.budget_known(scope, after[scope]["period_id"]) for scope in after)
