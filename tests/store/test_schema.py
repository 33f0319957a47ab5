"""Schema upgrades keep every row: a version-2 table (row_id, no caller or cache columns) gains the new
columns in place, and a spill file written with the older, shorter rows is replayed into them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from modelyard.store.rows import COLUMNS, request_row
from modelyard.store.schema import VERSION, connect
from modelyard.store.spill import SpillFile
from modelyard.types import Caller

V2 = ("CREATE TABLE requests (row_id INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, ts REAL NOT NULL, "
      "model TEXT NOT NULL, deployment TEXT, provider TEXT, status INTEGER NOT NULL, error_type TEXT, error TEXT, "
      "input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0, cached_input_tokens "
      "INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, "
      "latency_ms REAL, ttft_ms REAL, stream INTEGER NOT NULL DEFAULT 0, user TEXT, api TEXT, route TEXT)")


def test_a_version_2_table_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db)
    conn.execute(V2)
    conn.executemany("INSERT INTO requests (id, ts, model, status, cost_usd) VALUES (?, ?, 'g', 200, 0.25)",
                     [(f"r{i}", float(i)) for i in range(10)])
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()

    conn = connect(str(db), 1.0)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(requests)")]
    assert [c for c in COLUMNS if c not in cols] == []
    assert conn.execute("PRAGMA user_version").fetchone() == (VERSION,)
    assert conn.execute("SELECT COUNT(*), SUM(cost_usd), SUM(saved_usd) FROM requests").fetchone() == (10, 2.5, 0.0)
    row = request_row("new", "g", 200, caller=Caller(key_id="k1", team="ml"), cache="hit", saved_usd=0.01)
    conn.execute(f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row)
    got = conn.execute("SELECT key_id, team, cache, saved_usd FROM requests WHERE id = 'new'").fetchone()
    assert got == ("k1", "ml", "hit", 0.01)
    conn.close()


def test_a_spill_file_of_shorter_rows_is_replayed(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    conn = connect(str(db), 1.0)
    spill = SpillFile(str(db), 1 << 20)
    old = list(request_row("old", "g", 200, cost_usd=0.5))[:19]  # a row as a version-2 writer spilled it
    Path(spill.path).write_bytes(orjson.dumps(old) + b"\n")
    assert spill.replay(conn) == 1
    assert conn.execute("SELECT id, cost_usd, key_id, saved_usd FROM requests").fetchone() == ("old", 0.5, None, 0.0)
    conn.close()


def test_rows_carry_the_caller() -> None:
    row = request_row("r", "auto", 200, caller=Caller(key_id="k9", team="search", user="ana"))
    assert (row.key_id, row.team, row.user) == ("k9", "search", "ana")
    assert request_row("r", "auto", 200, user="bob", caller=Caller(user="ana")).user == "bob"
