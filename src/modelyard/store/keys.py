"""Virtual keys, teams and users: three tables in the request log's SQLite file (or, for a Postgres
location, in Postgres: store/postgres/keys.py).

Only a key's SHA-256 hash is stored (keys are 256-bit random tokens, so a plain hash cannot be
reversed or guessed), with its last four characters for display. Every write bumps a version
number in `keyring_meta` inside the same transaction: a server polls that one number to pick up
changes made by another process (`modelyard keys --config`, another worker).

All functions here are synchronous and open a short-lived connection: callers on an event loop
run them through a thread (accounting/admin.py does).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

import orjson

from .location import is_postgres
from .schema import create_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  last4 TEXT NOT NULL,
  name TEXT,
  team TEXT,
  user TEXT,
  budget_usd REAL,
  budget_period TEXT NOT NULL DEFAULT 'monthly',
  soft_budget_pct REAL,
  rpm INTEGER,
  tpm INTEGER,
  models TEXT,
  expires_at REAL,
  metadata TEXT,
  created_at REAL NOT NULL,
  revoked_at REAL,
  log_content INTEGER
);
CREATE INDEX IF NOT EXISTS keys_team ON keys (team);
CREATE INDEX IF NOT EXISTS keys_user ON keys (user);
CREATE TABLE IF NOT EXISTS teams (
  name TEXT PRIMARY KEY,
  budget_usd REAL,
  budget_period TEXT NOT NULL DEFAULT 'monthly',
  soft_budget_pct REAL,
  rpm INTEGER,
  tpm INTEGER,
  metadata TEXT,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  budget_usd REAL,
  budget_period TEXT NOT NULL DEFAULT 'monthly',
  soft_budget_pct REAL,
  rpm INTEGER,
  tpm INTEGER,
  metadata TEXT,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS keyring_meta (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL);
INSERT OR IGNORE INTO keyring_meta (one, version) VALUES (1, 0);
"""

BUSY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    """What teams, users and keys share: a budget and rate limits."""

    budget_usd: float | None = None
    budget_period: str = "monthly"
    soft_budget_pct: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Principal:
    """A team or a user record (`kind` says which)."""

    kind: str  # "team" | "user"
    name: str
    limits: Limits = Limits()
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key as stored: never the key itself."""

    id: str
    hash: str
    last4: str
    name: str | None = None
    team: str | None = None
    user: str | None = None
    limits: Limits = Limits()
    models: tuple[str, ...] | None = None  # None: every model
    expires_at: float | None = None
    created_at: float = 0.0
    revoked_at: float | None = None
    source: str = "api"  # "api" (this database) | "config" (the config file's `keys:`)
    log_content: bool | None = None  # keep its prompts/answers in the request log (None: group/default)


_LIMIT_COLS = tuple(f.name for f in fields(Limits) if f.name != "metadata")
_KEY_COLS = ("id", "hash", "last4", "name", "team", "user", *_LIMIT_COLS, "models", "expires_at", "metadata",
             "created_at", "revoked_at", "log_content")
_PRINCIPAL_COLS = ("name", *_LIMIT_COLS, "metadata", "created_at")
_TABLE = {"team": "teams", "user": "users"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything in the tables at one version."""

    version: int
    keys: list[KeyRecord]
    teams: dict[str, Principal]
    users: dict[str, Principal]


class StoreError(Exception):
    """The database cannot be opened, read or written (locked past the busy wait, unreadable)."""


@contextlib.contextmanager
def _connect(path: str, *, write: bool) -> Iterator[sqlite3.Connection]:
    try:
        if write:
            create_private(path)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (sqlite3.Error, OSError) as e:
        raise StoreError(f"{path}: {e}") from None
    try:
        if write:
            conn.executescript(SCHEMA)
            _add_columns(conn)
        yield conn
    except sqlite3.Error as e:
        raise StoreError(f"{path}: {e}") from None
    finally:
        conn.close()


@contextlib.contextmanager
def _transaction(path: str) -> Iterator[sqlite3.Connection]:
    """A write transaction that bumps the version."""
    with _connect(path, write=True) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("UPDATE keyring_meta SET version = version + 1")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise


def _add_columns(conn: sqlite3.Connection) -> None:
    """Columns added to `keys` after its first version (a database from before gains them in place)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(keys)")}
    if "log_content" not in cols:
        conn.execute("ALTER TABLE keys ADD COLUMN log_content INTEGER")


def _key_select(conn: sqlite3.Connection) -> str:
    """The SELECT list of a key row; a database not yet upgraded (only read so far) lacks log_content."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(keys)")}
    return ", ".join(c if c in cols else f"NULL AS {c}" for c in _KEY_COLS)


def _limits_row(lim: Limits) -> tuple[Any, ...]:
    return tuple(getattr(lim, c) for c in _LIMIT_COLS)


def _meta(text: str | None) -> dict[str, Any]:
    return orjson.loads(text) if text else {}


def _key_from_row(r: tuple[Any, ...]) -> KeyRecord:
    d = dict(zip(_KEY_COLS, r, strict=True))
    lim = Limits(**{c: d[c] for c in _LIMIT_COLS}, metadata=_meta(d["metadata"]))
    models = tuple(orjson.loads(d["models"])) if d["models"] is not None else None
    flag = d["log_content"]
    return KeyRecord(d["id"], d["hash"], d["last4"], d["name"], d["team"], d["user"], lim, models,
                     d["expires_at"], d["created_at"], d["revoked_at"],
                     log_content=None if flag is None else bool(flag))


def _principal_from_row(kind: str, r: tuple[Any, ...]) -> Principal:
    d = dict(zip(_PRINCIPAL_COLS, r, strict=True))
    lim = Limits(**{c: d[c] for c in _LIMIT_COLS}, metadata=_meta(d["metadata"]))
    return Principal(kind, d["name"], lim, d["created_at"])


def _key_values(k: KeyRecord) -> tuple[Any, ...]:
    models = orjson.dumps(list(k.models)).decode() if k.models is not None else None
    meta = orjson.dumps(k.limits.metadata).decode() if k.limits.metadata else None
    return (k.id, k.hash, k.last4, k.name, k.team, k.user, *_limits_row(k.limits), models, k.expires_at, meta,
            k.created_at, k.revoked_at, None if k.log_content is None else int(k.log_content))


# --- reads ---------------------------------------------------------------------------------------

def version(path: str) -> int:
    """The tables' version (0: no keys were ever stored here)."""
    if is_postgres(path):
        return _pg().version(path)
    if not _exists(path):
        return 0
    with _connect(path, write=False) as conn:
        try:
            row = conn.execute("SELECT version FROM keyring_meta").fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return 0
            raise StoreError(f"{path}: {e}") from None
    return int(row[0]) if row else 0


def load(path: str) -> Snapshot:
    """Every key (revoked ones included), team and user, read in one transaction."""
    if is_postgres(path):
        return _pg().load(path)
    if not _exists(path) or version(path) == 0:
        return Snapshot(0, [], {}, {})
    with _connect(path, write=False) as conn:
        conn.execute("BEGIN")
        try:
            v = int(conn.execute("SELECT version FROM keyring_meta").fetchone()[0])
            keys = [_key_from_row(r) for r in conn.execute(f"SELECT {_key_select(conn)} FROM keys")]
            teams = {p.name: p for p in (_principal_from_row("team", r) for r in conn.execute(
                f"SELECT {', '.join(_PRINCIPAL_COLS)} FROM teams"))}
            users = {p.name: p for p in (_principal_from_row("user", r) for r in conn.execute(
                f"SELECT {', '.join(_PRINCIPAL_COLS)} FROM users"))}
        finally:
            conn.execute("COMMIT")
    return Snapshot(v, keys, teams, users)


def _exists(path: str) -> bool:
    return path != ":memory:" and os.path.exists(path)


def get_key(path: str, key_id: str) -> KeyRecord | None:
    if is_postgres(path):
        return _pg().get_key(path, key_id)
    if not _exists(path) or version(path) == 0:
        return None
    with _connect(path, write=False) as conn:
        r = conn.execute(f"SELECT {_key_select(conn)} FROM keys WHERE id = ?", (key_id,)).fetchone()
    return _key_from_row(r) if r else None


# --- writes (each returns the new version) ---------------------------------------------------------

def _version_of(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT version FROM keyring_meta").fetchone()[0]) + 1  # after the bump


def insert_key(path: str, k: KeyRecord) -> int:
    if is_postgres(path):
        return _pg().insert_key(path, k)
    with _transaction(path) as conn:
        conn.execute(f"INSERT INTO keys ({', '.join(_KEY_COLS)}) VALUES ({', '.join('?' * len(_KEY_COLS))})",
                     _key_values(k))
        return _version_of(conn)


def update_key(path: str, k: KeyRecord) -> int:
    """Replace every column of key `k.id` (hash included: rotation)."""
    if is_postgres(path):
        return _pg().update_key(path, k)
    cols = [c for c in _KEY_COLS if c != "id"]
    values = _key_values(k)[1:]
    with _transaction(path) as conn:
        conn.execute(f"UPDATE keys SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ?", (*values, k.id))
        return _version_of(conn)


def upsert_principal(path: str, p: Principal, new: bool) -> int:
    """Insert (new=True; IntegrityError if the name exists) or replace a team or user."""
    if is_postgres(path):
        return _pg().upsert_principal(path, p, new)
    table = _TABLE[p.kind]
    meta = orjson.dumps(p.limits.metadata).decode() if p.limits.metadata else None
    values = (p.name, *_limits_row(p.limits), meta, p.created_at)
    verb = "INSERT" if new else "REPLACE"
    with _transaction(path) as conn:
        try:
            conn.execute(f"{verb} INTO {table} ({', '.join(_PRINCIPAL_COLS)}) VALUES "
                         f"({', '.join('?' * len(_PRINCIPAL_COLS))})", values)
        except sqlite3.IntegrityError:
            raise KeyError(p.name) from None
        return _version_of(conn)


def delete_principal(path: str, kind: str, name: str) -> int:
    if is_postgres(path):
        return _pg().delete_principal(path, kind, name)
    with _transaction(path) as conn:
        conn.execute(f"DELETE FROM {_TABLE[kind]} WHERE name = ?", (name,))
        return _version_of(conn)


def _pg() -> Any:
    from .postgres import keys

    return keys


def revoked(k: KeyRecord, when: float | None = None) -> KeyRecord:
    return replace(k, revoked_at=when if when is not None else time.time())
