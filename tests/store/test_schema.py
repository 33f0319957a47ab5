"""Schema upgrades keep every row: a version-2 table (row_id, no caller or cache columns) gains the new
columns, a version-3 table (key/team/user indexes over every row) keeps its rows and row_ids and gets
the partial indexes, and a spill file written with the older, shorter rows is replayed into them.
Rows go in many per statement, within the connection's variable limit, each without the columns its
shape leaves NULL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from modelyard.store.rows import COLUMNS, Row, request_row
from modelyard.store.schema import _TABLE, INSERT, ROWS_PER_STATEMENT, VERSION, connect, insert_rows, migrate
from modelyard.store.spill import SpillFile
from modelyard.types import Caller, RouteDecision, Scored, Usage

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


# The version-3 indexes: key/team/user over every row.
V3_INDEXES = ("CREATE INDEX requests_ts ON requests (ts)", "CREATE INDEX requests_id ON requests (id)",
              "CREATE INDEX requests_key_ts ON requests (key_id, ts)",
              "CREATE INDEX requests_team_ts ON requests (team, ts)",
              "CREATE INDEX requests_user_ts ON requests (user, ts)")


def _v3(db: Path) -> list[tuple]:
    """A version-3 log with 30 rows, ten of them deleted (row_ids with gaps); its rows as stored."""
    conn = sqlite3.connect(db)
    conn.execute(_TABLE.format(name="requests"))
    for stmt in V3_INDEXES:
        conn.execute(stmt)
    conn.executemany(INSERT, [request_row(f"r{i}", "g", 200, cost_usd=0.5, caller=Caller(key_id=f"k{i % 3}", team="t"))
                              for i in range(30)])
    conn.execute("DELETE FROM requests WHERE row_id % 3 = 0")
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    rows = conn.execute("SELECT * FROM requests ORDER BY row_id").fetchall()
    conn.close()
    return rows


def test_a_version_3_table_keeps_rows_and_row_ids_and_gets_partial_indexes(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    before = _v3(db)
    conn = sqlite3.connect(db, isolation_level=None)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    migrate(conn)
    assert [s for s in statements if s.startswith("DROP")] == [
        "DROP INDEX requests_key_ts", "DROP INDEX requests_team_ts", "DROP INDEX requests_user_ts"]
    assert conn.execute("SELECT * FROM requests ORDER BY row_id").fetchall() == before
    assert conn.execute("PRAGMA user_version").fetchone() == (VERSION,)
    indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests'"))
    for name, column in (("requests_key_ts", "key_id"), ("requests_team_ts", "team"), ("requests_user_ts", "user")):
        assert indexes[name].endswith(f"WHERE {column} IS NOT NULL")
    conn.execute(INSERT, request_row("new", "g", 200))  # above every row present: "the latest" is still the last
    assert conn.execute("SELECT id FROM requests ORDER BY row_id DESC LIMIT 1").fetchone() == ("new",)
    conn.close()
    again = sqlite3.connect(db, isolation_level=None)  # idempotent: nothing dropped or rebuilt the second time
    statements.clear()
    again.set_trace_callback(statements.append)
    migrate(again)
    assert not [s for s in statements if "DROP" in s.upper()], statements
    assert again.execute("SELECT COUNT(*) FROM requests").fetchone() == (len(before) + 1,)
    again.close()


def test_budget_queries_use_the_partial_indexes(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "log.db"), 1.0)
    for column, index in (("key_id", "requests_key_ts"), ("team", "requests_team_ts"), ("user", "requests_user_ts")):
        plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE {column} = ? "
                            "AND ts >= ?", ("x", 0.0)).fetchall()
        assert any(index in str(step) for step in plan), plan
    conn.close()


def test_rows_go_in_many_per_statement_within_the_variable_limit(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "log.db"), 1.0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 3 * len(COLUMNS) + 1)  # room for 3 rows a statement
    rows = [request_row(f"r{i}", "g", 200, cost_usd=i) for i in range(ROWS_PER_STATEMENT + 8)]
    insert_rows(conn, rows)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 250_000)
    insert_rows(conn, rows)
    got = conn.execute("SELECT id, cost_usd FROM requests ORDER BY row_id").fetchall()
    assert got == [(r.id, r.cost_usd) for r in rows] * 2
    with pytest.raises(ValueError, match="values"):  # a short row would shift every column after it
        insert_rows(conn, [rows[0], tuple(rows[1])[:-1]])
    conn.close()


def test_a_batch_mixing_row_shapes_reads_back_column_for_column_in_order(tmp_path: Path) -> None:
    """A plain answer's row goes in without the columns it leaves NULL, a streamed one's or one with a
    user without fewer, an error's or a logged prompt's with all of them: the batch still reads back
    exactly as recorded."""
    decision = RouteDecision(model="g", deployment="a", strategy="first-healthy", reason="position 1",
                             candidates=[Scored("a", 1.0)], attempts=1, upstream_s=0.002)
    caller = Caller(key_id="k1", team="t1")

    def plain(i: int) -> Row:
        return request_row(f"p{i}", "g", 200, deployment="a", provider="openai", usage=Usage(12, 9),
                           cost_usd=0.00012 * i, latency_ms=3.5, decision=decision, caller=caller)

    streamed = request_row("s", "g", 200, deployment="a", provider="openai", usage=Usage(5, 7), cost_usd=0.5,
                           latency_ms=9.0, ttft_ms=2.25, stream=True, user="ana", cache="miss", decision=decision)
    failed = request_row("f", "g", 502, deployment="a", provider="openai", error_type="upstream_error",
                         error="bad gateway", latency_ms=1.0, decision=decision, caller=caller)
    kept = request_row("c", "g", 200, deployment="a", usage=Usage(1, 1), experiment="e=v", decision=decision,
                       prompt='[{"role":"user","content":"hi"}]', response='{"content":"hello"}')
    with_user = request_row("u", "g", 200, deployment="a", usage=Usage(2, 3), user="bo", decision=decision)
    rows = [plain(0), plain(1), streamed, plain(2), failed, kept, streamed, with_user,
            *[plain(i) for i in range(3, 12)]]
    conn = connect(str(tmp_path / "log.db"), 1.0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 3 * len(COLUMNS) + 1)  # several statements per run
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    insert_rows(conn, rows)
    conn.set_trace_callback(None)
    got = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM requests ORDER BY row_id").fetchall()
    assert got == [tuple(r) for r in rows]
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert any("prompt" not in s and "ttft_ms" not in s for s in inserts)  # the plain answers' statement
    assert any("prompt" not in s and "ttft_ms" in s for s in inserts)  # the streamed answer's
    assert any("prompt" in s for s in inserts)  # the error's and the logged content's: every column
    conn.close()
