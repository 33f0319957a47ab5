"""Retention of the request log: rows older than `retention_days` are deleted in bounded batches, and
(`ContentRetention`) the prompt and response of rows older than `content_retention_days` are cleared —
the rows stay, with their counts and cost — together with the prompt and comment of feedback rows.

The writer thread (store/sqlite.py) calls `step` between its writes: each call deletes at most
`batch` rows in one short transaction, so a large backlog never holds the database (or the writer)
for long, and new rows keep going in between batches. While a backlog remains, the next step is due
at once; otherwise once per `every_s`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

log = logging.getLogger("modelyard.request_log")

BATCH = 5_000


class Retention:
    def __init__(self, days: float, *, batch: int = BATCH, every_s: float = 60.0) -> None:
        self.max_age_s = days * 86400
        self.batch = batch
        self.every_s = every_s
        self.deleted = 0  # rows deleted since start
        self._next = 0.0  # monotonic time the next step is due

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def step_on(self, request_log: Any) -> int:
        """`step` on the connection of a RequestLog, in its writer thread."""
        return self.step(request_log._conn)

    def step(self, conn: sqlite3.Connection | None, now: float | None = None) -> int:
        """Delete up to `batch` rows older than the cutoff; the number deleted (errors are logged, not
        raised: retention must never stop the log's writer)."""
        if conn is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.max_age_s
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute("DELETE FROM requests WHERE row_id IN (SELECT row_id FROM requests WHERE ts < ? "
                                   "ORDER BY ts LIMIT ?)", (cutoff, self.batch))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            log.warning("request log retention: delete failed (%s); retrying in %g s", e, self.every_s)
            self._next = time.monotonic() + self.every_s
            return 0
        n = cur.rowcount
        self.deleted += n
        self._next = 0.0 if n >= self.batch else time.monotonic() + self.every_s
        return n


class ContentRetention(Retention):
    """Clears message content older than `days`: `requests.prompt/response` and `feedback.prompt/comment`
    set to NULL, at most `batch` rows of each per step (found through partial indexes over the rows that
    still hold text, so a step costs the same however large the log is)."""

    cleared = 0  # rows whose content was cleared since start (requests and feedback)

    def step(self, conn: sqlite3.Connection | None, now: float | None = None) -> int:
        if conn is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.max_age_s
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = conn.execute(
                    "UPDATE requests SET prompt = NULL, response = NULL WHERE row_id IN (SELECT row_id FROM "
                    "requests WHERE (prompt IS NOT NULL OR response IS NOT NULL) AND ts < ? LIMIT ?)",
                    (cutoff, self.batch)).rowcount
                f = conn.execute(
                    "UPDATE feedback SET prompt = NULL, comment = NULL WHERE id IN (SELECT id FROM feedback "
                    "WHERE (prompt IS NOT NULL OR comment IS NOT NULL) AND ts < ? LIMIT ?)",
                    (cutoff, self.batch)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            log.warning("request log retention: clearing content failed (%s); retrying in %g s", e, self.every_s)
            self._next = time.monotonic() + self.every_s
            return 0
        self.cleared += n + f
        self._next = 0.0 if max(n, f) >= self.batch else time.monotonic() + self.every_s
        return n + f
