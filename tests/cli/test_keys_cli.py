"""`modelyard keys` and `modelyard spend` on the local database of a config, without a server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from modelyard.cli import app


def test_keys_create_list_rotate_revoke_and_spend_locally(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server:\n  request_log: {{path: {db}}}\n"
                   "deployments:\n  a: {provider: sim, model: gpt-4o-mini}\n")
    run = CliRunner().invoke
    r = run(app, ["keys", "create", "--config", str(cfg), "--name", "x", "--models", "a", "--json"])
    assert r.exit_code == 0, r.output
    made = json.loads(r.output)
    assert made["key"].startswith("sk-my-")
    assert made["key"].encode() not in db.read_bytes()
    assert run(app, ["keys", "create", "--config", str(cfg), "--models", "zzz"]).exit_code != 0
    rot = json.loads(run(app, ["keys", "rotate", made["id"], "--config", str(cfg), "--json"]).output)
    assert rot["id"] == made["id"] and rot["key"] != made["key"]
    assert json.loads(run(app, ["keys", "revoke", made["id"], "--config", str(cfg), "--json"]).output)["status"] \
        == "revoked"
    listed = json.loads(run(app, ["keys", "list", "--config", str(cfg), "--json"]).output)
    assert listed["data"] == []
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM keys").fetchone()[0] == 1
    sp = run(app, ["spend", "--config", str(cfg), "--by", "team", "--since", "7d", "--json"])
    assert sp.exit_code == 0, sp.output
    assert json.loads(sp.output)["total"]["requests"] == 0
