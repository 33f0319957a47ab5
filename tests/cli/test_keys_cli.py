"""`modelyard keys` and `modelyard spend` on the local database of a config, and `keys list` against a
real `modelyard serve` (`--url`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from servekit import KEY, cli, config_file, serve
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


def check_log_content_listed(*where: str, key: str | None) -> None:
    """Three keys (content kept, never kept, the default) and `keys list` naming each one's setting."""
    for name, flag in (("keeps", "--log-content"), ("never", "--no-log-content"), ("follows", None)):
        code, out = cli("keys", "create", "--name", name, *([flag] if flag else []), *where, "--json", key=key)
        assert code == 0, out
    code, out = cli("keys", "list", *where, key=key)
    assert code == 0, out
    header = next(line for line in out.splitlines() if " id " in f" {line} ")
    assert "log content" in header
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 3}
    cells = {name: rows[name].split("│")[header.split("┃").index(" log content ")].strip()
             for name in ("keeps", "never", "follows")}
    assert cells == {"keeps": "on", "never": "off", "follows": "default"}, out
    code, out = cli("keys", "list", *where, "--json", key=key)
    assert {k["name"]: k["log_content"] for k in json.loads(out)["data"]} == {
        "keeps": True, "never": False, "follows": None}


def test_keys_list_shows_log_content_locally(tmp_path: Path) -> None:
    check_log_content_listed("--config", str(config_file(tmp_path, False)), key=None)


def test_keys_list_shows_log_content_over_http(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        check_log_content_listed("--url", url, key=KEY)
