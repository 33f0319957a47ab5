"""A virtual key's `log_content` setting: through /admin/keys on the real server (and into the request
path at once), through `modelyard keys create --log-content`, and on a key database from before it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from conftest import make_server
from modelyard.cli import app
from modelyard.store import keys as store

ADMIN = {"authorization": "Bearer test-master-key"}


def _prompt(db: Path, rid: str) -> str | None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as c:
            r = c.execute("SELECT prompt FROM requests WHERE id = ?", (rid,)).fetchone()
        if r is not None:
            return r[0]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no row for {rid}")


def test_admin_api_round_trip_and_effect(tmp_path: Path) -> None:
    with make_server(tmp_path, master_key="test-master-key") as server:
        url = server.url
        log_db = tmp_path / "requests.db"
        r = httpx.post(f"{url}/admin/keys", headers=ADMIN, json={"name": "logged", "log_content": True})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["log_content"] is True
        assert httpx.get(f"{url}/admin/keys/{made['id']}", headers=ADMIN).json()["log_content"] is True
        bad = httpx.post(f"{url}/admin/keys", headers=ADMIN, json={"log_content": "yes"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "log_content"

        def ask(rid: str) -> None:
            resp = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}",
                                                                     "x-request-id": rid},
                              json={"model": "fast", "messages": [{"role": "user", "content": f"MARK {rid}"}]})
            assert resp.status_code == 200

        ask("lc-on")
        assert "MARK lc-on" in (_prompt(log_db, "lc-on") or "")
        p = httpx.patch(f"{url}/admin/keys/{made['id']}", headers=ADMIN, json={"log_content": False})
        assert p.status_code == 200 and p.json()["log_content"] is False
        ask("lc-off")
        assert _prompt(log_db, "lc-off") is None  # the key ring took the change for the next request
        p = httpx.patch(f"{url}/admin/keys/{made['id']}", headers=ADMIN, json={"log_content": None})
        assert p.json()["log_content"] is None
        listed = httpx.get(f"{url}/admin/keys", headers=ADMIN).json()["data"]
        assert [k["log_content"] for k in listed if k["id"] == made["id"]] == [None]


def test_cli_create_and_show(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server:\n  request_log: {{path: {db}}}\ndeployments:\n  a: {{provider: sim, model: m}}\n")
    run = CliRunner().invoke
    for flag, want in (("--log-content", True), ("--no-log-content", False), (None, None)):
        r = run(app, ["keys", "create", "--config", str(cfg), "--json", *([flag] if flag else [])])
        assert r.exit_code == 0, r.output
        made = json.loads(r.output)
        assert made["log_content"] is want
        shown = json.loads(run(app, ["keys", "show", made["id"], "--config", str(cfg), "--json"]).output)
        assert shown["log_content"] is want


def test_key_database_from_before_the_column(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as c:
        c.executescript(store.SCHEMA.replace(",\n  log_content INTEGER", ""))
        c.execute("INSERT INTO keys (id, hash, last4, created_at) VALUES ('key_1', 'h', 'abcd', 1)")
        c.execute("UPDATE keyring_meta SET version = 1")
    assert "log_content" not in {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(keys)")}
    snap = store.load(path)  # read-only: works without the column
    assert [k.log_content for k in snap.keys] == [None]
    store.insert_key(path, store.KeyRecord("key_2", "h2", "wxyz", log_content=True))  # a write upgrades
    assert {k.id: k.log_content for k in store.load(path).keys} == {"key_1": None, "key_2": True}
