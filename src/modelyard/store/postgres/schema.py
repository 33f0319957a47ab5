"""The Postgres schema: versioned migrations, applied at start and by `modelyard db migrate`.

`schema_migrations` holds each applied version. The request log's columns are not copied here: they
come from `rows.Row` (their order) and SQLite's declarations in store/schema.py (`_TABLE`, `_ADDED`),
translated to Postgres types, so a column appended to `Row` is added to an existing table in place
at the next start, as on SQLite. Migrations run in one transaction under an advisory lock, so
replicas starting together take turns and each sees the finished schema.
"""

from __future__ import annotations

import re
import time

import asyncpg

from .. import schema as sqlite_schema
from ..rows import COLUMNS
from .db import q

_LOCK_ID = 0x6D6F64656C  # "model": the advisory lock migrations hold
_TYPES = {"TEXT": "TEXT", "REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}


def _sqlite_decls() -> dict[str, str]:
    """Each request-log column's SQLite declaration (base table, then columns added later)."""
    out: dict[str, str] = {}
    for line in sqlite_schema._TABLE.splitlines():
        m = re.match(r"\s+(\w+)\s+(.+?),?$", line)
        if m and m.group(1) != "row_id":
            out[m.group(1)] = m.group(2)
    out.update(sqlite_schema._ADDED)
    return out


def column_decl(name: str) -> str:
    """The Postgres declaration of a request-log column."""
    decl = _sqlite_decls().get(name, "TEXT")
    typ, _, rest = decl.partition(" ")
    return f"{q(name)} {_TYPES.get(typ.upper(), 'TEXT')} {rest}".rstrip()


def _requests_table() -> str:
    cols = ",\n  ".join(column_decl(c) for c in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS requests (\n  row_id BIGSERIAL PRIMARY KEY,\n  {cols}\n)"


_INDEXES = """
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_id ON requests (id);
CREATE INDEX IF NOT EXISTS requests_key_ts ON requests (key_id, ts);
CREATE INDEX IF NOT EXISTS requests_team_ts ON requests (team, ts);
CREATE INDEX IF NOT EXISTS requests_user_ts ON requests ("user", ts);
CREATE INDEX IF NOT EXISTS requests_experiment ON requests (experiment) WHERE experiment IS NOT NULL;
"""

_KEYS = """
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, last4 TEXT NOT NULL, name TEXT, team TEXT, "user" TEXT,
  budget_usd DOUBLE PRECISION, budget_period TEXT NOT NULL DEFAULT 'monthly', soft_budget_pct DOUBLE PRECISION,
  rpm BIGINT, tpm BIGINT, models TEXT, expires_at DOUBLE PRECISION, metadata TEXT,
  created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS keys_team ON keys (team);
CREATE INDEX IF NOT EXISTS keys_user ON keys ("user");
CREATE TABLE IF NOT EXISTS teams (
  name TEXT PRIMARY KEY, budget_usd DOUBLE PRECISION, budget_period TEXT NOT NULL DEFAULT 'monthly',
  soft_budget_pct DOUBLE PRECISION, rpm BIGINT, tpm BIGINT, metadata TEXT, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, budget_usd DOUBLE PRECISION, budget_period TEXT NOT NULL DEFAULT 'monthly',
  soft_budget_pct DOUBLE PRECISION, rpm BIGINT, tpm BIGINT, metadata TEXT, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS keyring_meta (one INTEGER PRIMARY KEY CHECK (one = 1), version BIGINT NOT NULL);
INSERT INTO keyring_meta (one, version) VALUES (1, 0) ON CONFLICT DO NOTHING;
"""

_FEEDBACK = """
CREATE TABLE IF NOT EXISTS feedback (
  id BIGSERIAL PRIMARY KEY, request_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
  score DOUBLE PRECISION NOT NULL, comment TEXT, prompt TEXT, source TEXT NOT NULL DEFAULT 'api'
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
"""

_RESPONSES = """
CREATE TABLE IF NOT EXISTS responses (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
  expires DOUBLE PRECISION NOT NULL, response TEXT NOT NULL, conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires);
"""

_SCORES = """
CREATE TABLE IF NOT EXISTS experiment_scores (
  id BIGSERIAL PRIMARY KEY, request_id TEXT NOT NULL, experiment TEXT NOT NULL, variant TEXT NOT NULL,
  ts DOUBLE PRECISION NOT NULL, score DOUBLE PRECISION NOT NULL, judge TEXT NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS experiment_scores_request ON experiment_scores (request_id);
"""

# the rows that still hold message content, for content retention (store/retention.py) to find cheaply
_CONTENT = """
ALTER TABLE requests ADD COLUMN IF NOT EXISTS prompt TEXT;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS response TEXT;
ALTER TABLE keys ADD COLUMN IF NOT EXISTS log_content INTEGER;
CREATE INDEX IF NOT EXISTS requests_content_ts ON requests (ts) WHERE prompt IS NOT NULL OR response IS NOT NULL;
CREATE INDEX IF NOT EXISTS feedback_content_ts ON feedback (ts) WHERE prompt IS NOT NULL OR comment IS NOT NULL;
"""

# budget queries name one key, team or user (`column = $1`): rows without one need no entry there
_PARTIAL = """
DROP INDEX IF EXISTS requests_key_ts;
CREATE INDEX requests_key_ts ON requests (key_id, ts) WHERE key_id IS NOT NULL;
DROP INDEX IF EXISTS requests_team_ts;
CREATE INDEX requests_team_ts ON requests (team, ts) WHERE team IS NOT NULL;
DROP INDEX IF EXISTS requests_user_ts;
CREATE INDEX requests_user_ts ON requests ("user", ts) WHERE "user" IS NOT NULL;
"""


def migrations() -> list[tuple[int, str, str]]:
    """(version, what, SQL) in order; a released version's SQL never changes."""
    return [
        (1, "request log", _requests_table() + ";\n" + _INDEXES),
        (2, "virtual keys, teams, users", _KEYS),
        (3, "feedback", _FEEDBACK),
        (4, "stored responses", _RESPONSES),
        (5, "experiment judge scores", _SCORES),
        (6, "opt-in message content (per key) and its retention", _CONTENT),
        (7, "key, team and user indexes over the rows that have one", _PARTIAL),
    ]


VERSION = max(v for v, _, _ in migrations())


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the pending migrations and add request-log columns newer than the table; the versions
    applied now."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                               version, name, time.time())
            applied_now.append(version)
        have = {r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'requests'")}
        for column in COLUMNS:
            if column not in have:
                await conn.execute(f"ALTER TABLE requests ADD COLUMN IF NOT EXISTS {column_decl(column)}")
    return applied_now


async def current_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration (the pool migrated on connecting)."""
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
