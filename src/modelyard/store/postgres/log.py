"""The request log in Postgres: the SQLite writer's buffering, with Postgres underneath.

`PgRequestLog` is `store.sqlite.RequestLog` with its four database steps replaced (open, write a
batch, close, read): the buffer, batching, backoff, spill file, counted drops and flush on close are
the same code, so the log never stops on Postgres either. A batch goes in with COPY in one
transaction; a batch the database refuses because of one row is written row by row and that row
dropped and counted. Rows Postgres could not take while it was down spill to
`<server.request_log.path>.postgres.spill-<pid>.jsonl` and are replayed when it is back.
Retention deletes in bounded batches between writes, as on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import asyncpg

from ..keys import StoreError
from ..retention import ContentRetention, Retention
from ..rows import COLUMNS, Row
from ..sqlite import RequestLog
from .db import BAD_ROW, ERRORS, database, placeholders, q

if TYPE_CHECKING:
    from ...config import RequestLogConfig

log = logging.getLogger("modelyard.request_log")

_COLS = [c for c in COLUMNS]
INSERT = f"INSERT INTO requests ({', '.join(q(c) for c in COLUMNS)}) VALUES ({placeholders(len(COLUMNS))})"


async def _copy(conn: asyncpg.Connection, rows: list[Row]) -> None:
    await conn.copy_records_to_table("requests", records=rows, columns=_COLS)


async def insert_rows(conn: asyncpg.Connection, rows: list[Row]) -> int:
    """All rows in one transaction; returns how many (raises when the batch is refused)."""
    async with conn.transaction():
        await _copy(conn, rows)
    return len(rows)


async def insert_one_by_one(conn: asyncpg.Connection, rows: list[Row], where: str) -> int:
    """The rows the database takes, each alone; those it refuses are logged (by request id) and left out."""
    good = 0
    for r in rows:
        try:
            await conn.execute(INSERT, *r)
            good += 1
        except BAD_ROW as e:
            log.error("request log %s: row for request %r refused (%s); dropped", where, r[0] if r else None,
                      type(e).__name__)
    return good


class PgRetention(Retention):
    """Retention's bounded batches, on Postgres."""

    def step_on(self, request_log: Any) -> int:
        cutoff = time.time() - self.max_age_s

        async def delete(conn: asyncpg.Connection) -> int:
            status = await conn.execute(
                "DELETE FROM requests WHERE row_id IN (SELECT row_id FROM requests WHERE ts < $1 ORDER BY ts "
                "LIMIT $2)", cutoff, self.batch)
            return int(status.split()[-1])

        try:
            n = database(request_log.path).run(delete)
        except ERRORS as e:
            log.warning("request log retention: delete failed (%s); retrying in %g s", type(e).__name__, self.every_s)
            self._next = time.monotonic() + self.every_s
            return 0
        self.deleted += n
        self._next = 0.0 if n >= self.batch else time.monotonic() + self.every_s
        return n


class PgContentRetention(ContentRetention):
    """Content retention's bounded batches (prompt/response of requests, prompt/comment of feedback
    set to NULL; the rows stay), on Postgres. The outer condition is checked again on a row another
    replica cleared meanwhile, so each row is counted once."""

    def step_on(self, request_log: Any) -> int:
        cutoff = time.time() - self.max_age_s

        async def clear(conn: asyncpg.Connection) -> tuple[int, int]:
            async with conn.transaction():
                n = await conn.execute(
                    "UPDATE requests SET prompt = NULL, response = NULL "
                    "WHERE (prompt IS NOT NULL OR response IS NOT NULL) AND row_id IN (SELECT row_id FROM requests "
                    "WHERE (prompt IS NOT NULL OR response IS NOT NULL) "
                    "AND ts < $1 LIMIT $2)", cutoff, self.batch)
                f = await conn.execute(
                    "UPDATE feedback SET prompt = NULL, comment = NULL "
                    "WHERE (prompt IS NOT NULL OR comment IS NOT NULL) AND id IN (SELECT id FROM feedback "
                    "WHERE (prompt IS NOT NULL OR comment IS NOT NULL) AND ts < $1 "
                    "LIMIT $2)", cutoff, self.batch)
            return int(n.split()[-1]), int(f.split()[-1])

        try:
            n, f = database(request_log.path).run(clear)
        except ERRORS as e:
            log.warning("request log retention: clearing content failed (%s); retrying in %g s", type(e).__name__,
                        self.every_s)
            self._next = time.monotonic() + self.every_s
            return 0
        self.cleared += n + f
        self._next = 0.0 if max(n, f) >= self.batch else time.monotonic() + self.every_s
        return n + f


class PgRequestLog(RequestLog):
    """The request log in the Postgres database at `location` (store/location.py)."""

    _ERRORS = ERRORS

    def __init__(self, location: str, **kw: Any) -> None:
        super().__init__(location, **kw)
        if self.retention is not None:
            self.retention = PgRetention(self.retention.max_age_s / 86400)
        if self.content_retention is not None:
            self.content_retention = PgContentRetention(self.content_retention.max_age_s / 86400)

    @classmethod
    def for_location(cls, location: str, cfg: RequestLogConfig) -> PgRequestLog:
        return cls(location, flush_interval_s=cfg.flush_interval_s, batch_size=cfg.batch_size,
                  max_buffer_rows=cfg.max_buffer_rows, overflow=cfg.overflow, max_spill_mb=cfg.max_spill_mb,
                  busy_timeout_s=cfg.busy_timeout_s, retry_max_interval_s=cfg.retry_max_interval_s,
                  close_timeout_s=cfg.close_timeout_s, retention_days=cfg.retention_days,
                  content_retention_days=cfg.content_retention_days, spill_path=cfg.path + ".postgres")

    def _open(self) -> None:
        """Connect (and migrate) now, so a start-up with the database down is logged at once."""
        database(self.path).run(_ping)

    def _write(self, rows: list[Row]) -> None:
        db = database(self.path)
        if self._replay_due and self.spill is not None:
            replayed = self.spill.replay_with(lambda chunks: db.run(lambda c: _insert_all(c, chunks)))
            self._replay_due = False
            self.written += replayed
            if replayed:
                log.warning("request log %s: replayed %d spilled rows", self.path, replayed)
        if not rows:
            return
        try:
            self.written += db.run(lambda c: insert_rows(c, rows))
        except BAD_ROW:
            good = db.run(lambda c: insert_one_by_one(c, rows, self.path))
            self.written += good
            self.dropped += len(rows) - good

    def _close_conn(self) -> None:
        """The pool stays open between errors (keys, feedback and spend share it)."""

    async def close(self) -> None:
        """Write what is buffered (as the SQLite log does), then give the pool's connections back."""
        await super().close()
        await asyncio.to_thread(database(self.path).close)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows with SQL written for SQLite's `?` placeholders (also valid Postgres otherwise)."""
        parts = sql.split("?")
        text = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))

        async def fetch(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in await conn.fetch(text, *params)]

        return database(self.path).run(fetch)

    def spent_since(self, column: str, value: str, since: float) -> float:
        async def total(conn: asyncpg.Connection) -> float:
            return float(await conn.fetchval(f"SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE {q(column)} = $1 "
                                             "AND ts >= $2", value, since))
        try:
            return database(self.path).run(total)
        except ERRORS as e:
            raise StoreError(f"{self.path}: {type(e).__name__}: {e}") from None


async def _ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT 1")


async def _insert_all(conn: asyncpg.Connection, chunks: Iterator[list[Row]]) -> int:
    n = 0
    async with conn.transaction():
        for chunk in chunks:
            await _copy(conn, chunk)
            n += len(chunk)
    return n
