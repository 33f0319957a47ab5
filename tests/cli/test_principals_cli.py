"""`modelyard teams …` and `modelyard users …`: against a real `modelyard serve` process (`--url`,
master key from MODELYARD_MASTER_KEY) and against the local database of a config (`--config`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servekit import KEY, cli, config_file, serve


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with serve(tmp_path) as url:
        yield url


def test_teams_and_users_over_http(server: str) -> None:
    code, out = cli("teams", "create", "eng", "--rpm", "1", "--budget", "25", "--period", "weekly",
                    "--meta", "owner=alice", "--url", server, "--json")
    assert code == 0, out
    team = json.loads(out)
    assert team["name"] == "eng" and team["rpm"] == 1 and team["budget_usd"] == 25 and team["metadata"] == {
        "owner": "alice"}
    code, out = cli("teams", "create", "eng", "--url", server)
    assert code == 2 and "409" in out and "exists" in out
    code, out = cli("teams", "list", "--url", server)  # the rich table
    assert code == 0 and "eng" in out and "25/weekly" in out
    # a key of the team: the team's rpm applies to it, over HTTP
    code, out = cli("keys", "create", "--team", "eng", "--url", server, "--json")
    assert code == 0, out
    made = json.loads(out)
    body = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
    auth = {"authorization": f"Bearer {made['key']}"}
    assert httpx.post(server + "/v1/chat/completions", json=body, headers=auth).status_code == 200
    second = httpx.post(server + "/v1/chat/completions", json=body, headers=auth)
    assert second.status_code == 429 and "team:eng" in second.json()["error"]["message"]
    code, out = cli("teams", "show", "eng", "--url", server, "--json")
    assert json.loads(out)["active_keys"] == 1
    code, out = cli("teams", "delete", "eng", "--url", server)
    assert code == 2 and "409" in out and made["id"] in out  # refused while a key names it
    code, out = cli("teams", "update", "eng", "--clear", "rpm", "--soft", "80", "--url", server, "--json")
    assert code == 0 and json.loads(out)["rpm"] is None and json.loads(out)["soft_budget_pct"] == 80
    assert cli("keys", "revoke", made["id"], "--url", server)[0] == 0
    code, out = cli("teams", "delete", "eng", "--url", server)
    assert code == 0 and "deleted" in out
    code, out = cli("users", "create", "bob", "--tpm", "5000", "--url", server, "--json")
    assert code == 0 and json.loads(out)["tpm"] == 5000
    code, out = cli("users", "list", "--url", server, "--json")
    assert [u["name"] for u in json.loads(out)["data"]] == ["bob"]
    code, out = cli("users", "show", "nobody", "--url", server)
    assert code == 2 and "404" in out and "nobody" in out
    code, out = cli("users", "list", "--url", server, key="sk-not-the-master-key")
    assert code == 2 and ("401" in out or "403" in out)
    assert KEY not in out


def test_teams_and_users_on_the_local_database(tmp_path: Path) -> None:
    cfg = str(config_file(tmp_path, False))
    code, out = cli("teams", "create", "ml", "--budget", "10", "-c", cfg, "--json", key=None)
    assert code == 0, out
    assert json.loads(out)["budget_period"] in (None, "monthly")
    code, out = cli("keys", "create", "--team", "ml", "-c", cfg, "--json", key=None)
    assert code == 0, out
    code, out = cli("teams", "delete", "ml", "-c", cfg, key=None)
    assert code == 2 and "active key" in out
    code, out = cli("teams", "update", "ml", "-c", cfg, key=None)
    assert code == 2 and "nothing to change" in out
    code, out = cli("teams", "update", "ml", "--clear", "colour", "-c", cfg, key=None)
    assert code == 2 and "--clear takes one of" in out
    code, out = cli("teams", "update", "ml", "--budget", "12", "--clear", "budget_usd", "-c", cfg, key=None)
    assert code == 2 and "choose one" in out
    code, out = cli("teams", "update", "ml", "--budget", "12", "--period", "daily", "-c", cfg, "--json", key=None)
    assert code == 0 and json.loads(out)["budget_usd"] == 12 and json.loads(out)["budget_period"] == "daily"
    code, out = cli("users", "create", "ann", "--period", "hourly", "-c", cfg, key=None)
    assert code == 2 and "budget_period" in out
    code, out = cli("users", "create", "ann", "--rpm", "60", "-c", cfg, key=None)
    assert code == 0 and "ann" in out
    code, out = cli("users", "list", "-c", cfg, "--json", key=None)
    assert [(u["name"], u["rpm"]) for u in json.loads(out)["data"]] == [("ann", 60)]
    code, out = cli("users", "delete", "ann", "-c", cfg, key=None)
    assert code == 0 and "user ann deleted" in out
    code, out = cli("teams", "list", "-c", cfg, "--json", key=None)
    assert [t["name"] for t in json.loads(out)["data"]] == ["ml"]
