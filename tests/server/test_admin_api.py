"""Virtual keys over the real server with the official openai SDK: create → use → revoke → 401,
expired → 401, out-of-scope model → 403 naming it, rotate, team CRUD, hashes only on disk, spend
totals equal to the sum of the rows."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import make_server
from modelyard.store.spend import cost_units

MASTER = "test-master-key-0123456789"
H = {"authorization": f"Bearer {MASTER}"}


def _chat(url: str, key: str, model: str = "sim/fast") -> str:
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]).id


def test_keys_lifecycle_and_spend(tmp_path: Path) -> None:
    with make_server(tmp_path, master_key=MASTER) as s:
        team = httpx.post(s.url + "/admin/teams", headers=H, json={"name": "ml", "budget_usd": 5, "rpm": 100})
        assert team.status_code == 201, team.text
        bad = httpx.post(s.url + "/admin/keys", headers=H, json={"rpm": -1})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
        bad = httpx.post(s.url + "/admin/keys", headers=H, json={"models": ["nope"]})
        assert bad.status_code == 400 and "nope" in bad.text
        r = httpx.post(s.url + "/admin/keys", headers=H, json={"name": "a", "team": "ml", "user": "ann",
                                                              "budget_usd": 1, "models": ["sim/fast"]})
        assert r.status_code == 201, r.text
        key, kid = r.json()["key"], r.json()["id"]
        assert key.startswith("sk-my-")
        assert httpx.get(s.url + f"/admin/keys/{kid}", headers=H).json()["team"] == "ml"
        assert httpx.get(s.url + "/admin/keys/key_nope", headers=H).status_code == 404
        caller = s.server.config.app.auth.ring.lookup(key.encode()).caller
        assert {b.scope for b in caller.budgets} == {f"key:{kid}", "team:ml"}
        assert {lim.scope for lim in caller.limits} == {"team:ml"}

        ids = [_chat(s.url, key) for _ in range(3)]
        assert ids
        with pytest.raises(openai.PermissionDeniedError) as e403:
            _chat(s.url, key, "sim/smart")
        assert "sim/smart" in str(e403.value)
        with pytest.raises(openai.AuthenticationError):
            _chat(s.url, "sk-my-not-a-key-at-all-0000")
        # a virtual key is not an admin
        assert httpx.get(s.url + "/admin/keys", headers={"authorization": f"Bearer {key}"}).status_code == 403

        rot = httpx.post(s.url + f"/admin/keys/{kid}/rotate", headers=H)
        assert rot.status_code == 200 and rot.json()["id"] == kid
        new = rot.json()["key"]
        with pytest.raises(openai.AuthenticationError):
            _chat(s.url, key)
        _chat(s.url, new)
        assert httpx.delete(s.url + f"/admin/keys/{kid}", headers=H).json()["status"] == "revoked"
        with pytest.raises(openai.AuthenticationError) as e401:
            _chat(s.url, new)
        assert "revoked" in str(e401.value) and new not in str(e401.value)
        assert httpx.delete(s.url + "/admin/teams/ml", headers=H).status_code == 200

        # expired
        expires = time.time() + 3  # (room for a loaded box between creating the key and using it)
        r = httpx.post(s.url + "/admin/keys", headers=H, json={"expires_at": expires})
        exp = r.json()["key"]
        _chat(s.url, exp)
        time.sleep(max(0.0, expires - time.time()) + 0.2)
        with pytest.raises(openai.AuthenticationError) as eexp:
            _chat(s.url, exp)
        assert "expired" in str(eexp.value)

        sp = httpx.get(s.url + "/admin/spend?by=key&since=1h", headers=H)
        assert sp.status_code == 200, sp.text
        body = sp.json()
        assert httpx.get(s.url + "/admin/spend?by=nope", headers=H).status_code == 400
    db = tmp_path / "requests.db"
    conn = sqlite3.connect(db)
    costs = [c for (c,) in conn.execute("SELECT cost_usd FROM requests WHERE ts >= ?", (time.time() - 3600,))]
    assert sum(cost_units(c) for c in costs) == round(body["total"]["cost_usd"] * 10**10)
    assert body["total"]["requests"] <= len(costs)
    rows = conn.execute("SELECT status, error_type, key_id FROM requests WHERE key_id = ?", (kid,)).fetchall()
    assert sum(1 for st, _, _ in rows if st == 200) == 4 and any(st == 403 for st, _, _ in rows)
    assert any(st == 401 for st, _, _ in conn.execute("SELECT status, error_type, key_id FROM requests"))
    conn.close()
    for f in tmp_path.iterdir():
        data = f.read_bytes()
        for secret in (key, new, exp):
            assert secret.encode() not in data, f.name


def test_config_declared_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.defaults import default_config_data

    monkeypatch.setenv("TEAM_A_KEY", "sk-my-config-declared-key-0123456789")
    data = default_config_data(sim_only=True)
    data["keys"] = {"team-a": {"key": "env:TEAM_A_KEY", "team": "a", "models": ["sim/fast"]}}
    with make_server(tmp_path, data, master_key=MASTER) as s:
        _chat(s.url, "sk-my-config-declared-key-0123456789")
        with pytest.raises(openai.PermissionDeniedError):
            _chat(s.url, "sk-my-config-declared-key-0123456789", "sim/smart")
        r = httpx.delete(s.url + "/admin/keys/cfg_team-a", headers=H)
        assert r.status_code == 409
