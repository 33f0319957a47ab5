"""Quality feedback on logged requests: a `feedback` table in the request log's SQLite file (or in
Postgres: store/postgres/records.py).

One row per signal (a request may get several: a user's thumbs, a judge's score); training reads
the latest per request. A feedback row may carry the prompt it is about (the request log keeps prompts
only where content logging is on) — that is what `modelyard train --from-log` and `modelyard replay`
learn from. Its prompt and comment are cleared after `request_log.content_retention_days`
(store/retention.py).

Feedback is off the hot path: each call opens a short-lived connection in a worker thread. It waits
at most `busy_timeout_s` for a locked database and then raises `StoreUnavailable`, so an API call
answers promptly instead of queueing behind a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from .location import is_postgres

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id TEXT NOT NULL,
  ts REAL NOT NULL,
  score REAL NOT NULL,
  comment TEXT,
  prompt TEXT,
  source TEXT NOT NULL DEFAULT 'api'
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
CREATE INDEX IF NOT EXISTS feedback_text_ts ON feedback (ts) WHERE prompt IS NOT NULL OR comment IS NOT NULL;
"""


@dataclass(slots=True)
class LoggedRequest:
    id: str
    model: str
    deployment: str | None
    status: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    key_id: str | None = None  # the virtual key that made the request (None: the master key)


@dataclass(slots=True)
class Scored:
    """A logged request joined with its latest feedback."""

    request: LoggedRequest
    score: float | None
    prompt: str | None
    ts: float


class StoreUnavailable(Exception):
    """The database is locked past the busy wait, or cannot be opened or written."""


def _connect(path: str, busy_timeout_s: float = 10.0) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    conn.executescript(SCHEMA)
    return conn


class FeedbackStore:
    def __init__(self, path: str, *, busy_timeout_s: float = 1.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s

    def _request(self, request_id: str) -> LoggedRequest | None:
        if is_postgres(self.path):
            from .postgres.records import logged_request

            return logged_request(self.path, request_id)
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreUnavailable(str(e)) from None
        try:  # the latest row with this id (a client may send the same x-request-id twice)
            row = conn.execute("SELECT id, model, deployment, status, cost_usd, input_tokens, output_tokens, "
                               "key_id FROM requests WHERE id = ? ORDER BY rowid DESC LIMIT 1",
                               (request_id,)).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise StoreUnavailable(str(e)) from None
            row = None  # no request log table yet
        except sqlite3.Error as e:
            raise StoreUnavailable(str(e)) from None
        finally:
            conn.close()
        return LoggedRequest(*row) if row else None

    def _add(self, request_id: str, score: float, comment: str | None, prompt: str | None, source: str) -> int:
        if is_postgres(self.path):
            from .postgres.records import add_feedback

            return add_feedback(self.path, request_id, score, comment, prompt, source)
        try:
            conn = _connect(self.path, self.busy_timeout_s)
        except sqlite3.Error as e:
            raise StoreUnavailable(str(e)) from None
        try:
            cur = conn.execute("INSERT INTO feedback (request_id, ts, score, comment, prompt, source) "
                               "VALUES (?, ?, ?, ?, ?, ?)", (request_id, time.time(), score, comment, prompt, source))
            return int(cur.lastrowid or 0)
        except sqlite3.Error as e:
            raise StoreUnavailable(str(e)) from None
        finally:
            conn.close()

    async def request(self, request_id: str) -> LoggedRequest | None:
        return await asyncio.to_thread(self._request, request_id)

    async def add(self, request_id: str, score: float, *, comment: str | None = None, prompt: str | None = None,
                  source: str = "api") -> int:
        return await asyncio.to_thread(self._add, request_id, score, comment, prompt, source)


def read_scored(path: str, *, only_scored: bool = False) -> list[Scored]:
    """Logged successful requests with their latest feedback (score/prompt None when there is none)."""
    if is_postgres(path):
        from .postgres.records import read_scored as pg_read_scored

        return pg_read_scored(path, only_scored=only_scored)
    conn = _connect(path)
    try:
        rows: list[Any] = conn.execute(
            "SELECT r.id, r.model, r.deployment, r.status, r.cost_usd, r.input_tokens, r.output_tokens, "
            "f.score, f.prompt, r.ts FROM requests r LEFT JOIN ("
            "  SELECT request_id, score, prompt, MAX(id) FROM feedback GROUP BY request_id"
            ") f ON f.request_id = r.id WHERE r.status = 200 ORDER BY r.ts").fetchall()
        prompts = dict(conn.execute(
            "SELECT request_id, prompt FROM feedback WHERE prompt IS NOT NULL GROUP BY request_id").fetchall())
    except sqlite3.OperationalError as e:
        raise ValueError(f"{path}: not a modelyard request log ({e})") from None
    finally:
        conn.close()
    out = []
    for r in rows:
        if only_scored and r[7] is None:
            continue
        out.append(Scored(LoggedRequest(*r[:7]), r[7], r[8] or prompts.get(r[0]), r[9]))
    return out
