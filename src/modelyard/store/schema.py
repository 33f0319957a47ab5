"""The request log's SQLite file: created private (0600), opened, and brought to the current schema.

`requests.id` is the request id a response carries (a client's `x-request-id`, or one the gateway
made): a correlation field that two rows may share. Each row's own key is `row_id` (never reused, as
Postgres's BIGSERIAL). The key, team and user indexes cover only the rows that have one, so a row
without them costs no entry there; budget queries (`column = ?`) still use them.

Upgrades keep every row. A database from before `row_id` (where `id` was the primary key, so a
repeated client id broke the insert) is copied into the new table inside one transaction: every row
is kept, or nothing changes. An index declared otherwise than here is rebuilt (a few seconds per
million rows, once); columns added later are added in place.

`insert_rows` writes a batch with many rows per INSERT statement: one statement step (and one
AUTOINCREMENT update) per chunk instead of one per row; the columns a common row leaves NULL are left
out of its statement rather than bound.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from .rows import COLUMNS

VERSION = 4

_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
  row_id INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  ts REAL NOT NULL,
  model TEXT NOT NULL,
  deployment TEXT,
  provider TEXT,
  status INTEGER NOT NULL,
  error_type TEXT,
  error TEXT,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  cached_input_tokens INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens INTEGER NOT NULL DEFAULT 0,
  cost_usd REAL NOT NULL DEFAULT 0,
  latency_ms REAL,
  ttft_ms REAL,
  stream INTEGER NOT NULL DEFAULT 0,
  user TEXT,
  api TEXT,
  route TEXT,
  key_id TEXT,
  team TEXT,
  cache TEXT,
  saved_usd REAL NOT NULL DEFAULT 0,
  experiment TEXT,
  cache_write_tokens INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  fallbacks INTEGER NOT NULL DEFAULT 0,
  retries INTEGER NOT NULL DEFAULT 0,
  fallback_reasons TEXT,
  upstream_ms REAL,
  prompt TEXT,
  response TEXT
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_id ON requests (id);
CREATE INDEX IF NOT EXISTS requests_key_ts ON requests (key_id, ts) WHERE key_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_team_ts ON requests (team, ts) WHERE team IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_user_ts ON requests (user, ts) WHERE user IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_experiment ON requests (experiment) WHERE experiment IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_content_ts ON requests (ts) WHERE prompt IS NOT NULL OR response IS NOT NULL;
"""

# Columns added after version 2, with their declarations (a version-2 table gains them in place).
_ADDED = {"key_id": "TEXT", "team": "TEXT", "cache": "TEXT", "saved_usd": "REAL NOT NULL DEFAULT 0",
          "experiment": "TEXT", "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0",
          "attempts": "INTEGER NOT NULL DEFAULT 0", "fallbacks": "INTEGER NOT NULL DEFAULT 0",
          "retries": "INTEGER NOT NULL DEFAULT 0", "fallback_reasons": "TEXT", "upstream_ms": "REAL",
          "prompt": "TEXT", "response": "TEXT"}




def _null(value: None) -> None:
    return None


# Python's sqlite3 binds an exact int, float or str as it is, but sends any other value, None too,
# through its adapter lookup, which for None fails by raising and formatting an AttributeError before
# binding NULL: about a third of the writer's CPU per row went there (a row holds ten or so NULLs).
# An adapter registered for None is found by one dict lookup. Adapters are module-wide; this one binds
# NULL, as before, for every connection in the process.
sqlite3.register_adapter(type(None), _null)

INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
ROWS_PER_STATEMENT = 50  # past ~30, fewer statements per batch no longer save writer time


class _Shape:
    """Rows whose `omitted` columns are all NULL, inserted without them (the columns default to NULL):
    fewer values to bind per row, and no NULL to adapt."""

    def __init__(self, omitted: tuple[str, ...]) -> None:
        self.columns = tuple(c for c in COLUMNS if c not in omitted)
        self.kept = operator.itemgetter(*(COLUMNS.index(c) for c in self.columns))


# An answer's row leaves these NULL unless an error, an experiment, a fallback or content logging
# fills them; its shape then depends on whether it was streamed (ttft_ms), had a user and met the cache.
_ANSWER = ("error_type", "error", "experiment", "fallback_reasons", "prompt", "response")
_answer = operator.itemgetter(*(COLUMNS.index(c) for c in _ANSWER))
_ANSWER_NULLS = (None,) * len(_ANSWER)
_OPTIONAL = ("ttft_ms", "user", "cache")
_TTFT, _USER, _CACHE = (COLUMNS.index(c) for c in _OPTIONAL)
_SHAPES = {nulls: _Shape((*_ANSWER, *(c for c, null in zip(_OPTIONAL, nulls, strict=True) if null)))
           for nulls in itertools.product((True, False), repeat=len(_OPTIONAL))}


@functools.lru_cache(maxsize=(len(_SHAPES) + 1) * ROWS_PER_STATEMENT)
def _insert_n(columns: tuple[str, ...], n: int) -> str:
    one = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO requests ({', '.join(columns)}) VALUES {', '.join([one] * n)}"


def insert_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (full-width, in COLUMNS order) inside the caller's transaction and in their order,
    many per statement (as many as the connection's variable limit allows, up to ROWS_PER_STATEMENT),
    each run of rows of one shape without the columns it leaves NULL. A row of the wrong width raises
    ValueError, as a row SQLite refuses raises: the caller then writes them one by one."""
    width = len(COLUMNS)
    runs: list[tuple[tuple[str, ...], list[Sequence[Any]]]] = []
    columns: tuple[str, ...] = ()
    run: list[Sequence[Any]] = []
    for r in rows:
        if len(r) != width:
            raise ValueError(f"a request-log row has {len(r)} values, not {width}")
        if _answer(r) == _ANSWER_NULLS:
            shape = _SHAPES[r[_TTFT] is None, r[_USER] is None, r[_CACHE] is None]
            cols, values = shape.columns, shape.kept(r)
        else:
            cols, values = COLUMNS, r
        if cols is not columns:
            columns, run = cols, []
            runs.append((cols, run))
        run.append(values)
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    for cols, run in runs:
        _insert_run(conn, cols, run, max(1, min(ROWS_PER_STATEMENT, limit // len(cols))))


def _insert_run(conn: sqlite3.Connection, columns: tuple[str, ...], rows: list[Sequence[Any]], per: int) -> None:
    full = len(rows) - len(rows) % per
    flat = itertools.chain.from_iterable
    if full:
        conn.executemany(_insert_n(columns, per), [tuple(flat(rows[i:i + per])) for i in range(0, full, per)])
    if full < len(rows):
        conn.execute(_insert_n(columns, len(rows) - full), tuple(flat(rows[full:])))

def create_private(path: str) -> None:
    """Create the file 0600 if it does not exist (SQLite gives its -wal/-shm files the same mode),
    and take group/other access away from one that does."""
    if path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for p in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(OSError):
            if os.stat(p).st_mode & 0o077:
                os.chmod(p, 0o600)


def connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    """Open the log for writing, at the current schema."""
    create_private(path)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the `requests` table and its indexes; idempotent, one transaction."""
    from .feedback import SCHEMA as FEEDBACK

    conn.execute("BEGIN IMMEDIATE")
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(requests)")]
        if cols and "row_id" not in cols:
            conn.execute(_TABLE.format(name="requests_v2"))
            kept = ", ".join(c for c in COLUMNS if c in cols)
            conn.execute(f"INSERT INTO requests_v2 ({kept}) SELECT {kept} FROM requests ORDER BY ts")
            conn.execute("DROP TABLE requests")
            conn.execute("ALTER TABLE requests_v2 RENAME TO requests")
        else:
            conn.execute(_TABLE.format(name="requests"))
            for column, decl in _ADDED.items():
                if cols and column not in cols:
                    conn.execute(f"ALTER TABLE requests ADD COLUMN {column} {decl}")
        _rebuild_changed_indexes(conn)
        for stmt in (_INDEXES + FEEDBACK).split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version={VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _rebuild_changed_indexes(conn: sqlite3.Connection) -> None:
    """Drop each request-log index whose stored declaration is not the current one (it is created
    again right after, from _INDEXES)."""
    def norm(sql: str) -> str:
        return " ".join(sql.upper().replace("IF NOT EXISTS", " ").split())

    stored = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests' "
                               "AND sql IS NOT NULL").fetchall())
    for stmt in _INDEXES.split(";"):
        if not stmt.strip():
            continue
        name = stmt.split()[5]  # CREATE INDEX IF NOT EXISTS <name> ON ...
        have = stored.get(name)
        if have is not None and norm(have) != norm(stmt):
            conn.execute(f"DROP INDEX {name}")
