"""The request log in SQLite: one row per request, written off the request path, never given up.

`record` appends a row (built by rows.request_row) to an in-memory buffer; a background task writes
the buffer in batches through the log's own thread, so the event loop never waits on the disk.

The writer survives every error. A failed batch is rolled back and kept; the writer retries with a
backoff (doubling up to `retry_max_interval_s`) and resumes by itself once the database takes writes
again (a lock held past the busy wait, a missing directory, a disk error: the connection is reopened).
The buffer is bounded (`max_buffer_rows`): past it, rows go to a spill file next to the database
(spill.py, replayed when the database is back) or, with `overflow: drop` or the spill file full or
unwritable, are dropped — counted in `dropped` and logged. Rows that the database refuses on their
own (not the database's fault) are dropped one by one, counted and logged, without holding up the rest.
`close()` writes what it can within `close_timeout_s`, spills the rest, and logs what it could not keep.

The connection lives in one dedicated thread: opening, every write and closing run there, in order.
Spill files are written by a second thread, so a writer stuck in a busy wait does not stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .keys import StoreError
from .retention import ContentRetention, Retention
from .rows import COLUMNS, Row, request_row
from .schema import INSERT, connect, insert_rows
from .serial_thread import SerialThread
from .spill import SpillFile

if TYPE_CHECKING:
    from ..config import RequestLogConfig

__all__ = ["COLUMNS", "RequestLog", "Row", "request_row"]

log = logging.getLogger("modelyard.request_log")

_BAD_ROW = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError,
            ValueError, TypeError, OverflowError)


async def _woken(wake: asyncio.Event, seconds: float) -> None:
    """Until `wake` is set, by `record` or after `seconds`: the writer's pause between batches, without
    the task and cancellation per pause that wait_for makes."""
    timer = asyncio.get_running_loop().call_later(seconds, wake.set)
    try:
        await wake.wait()
    finally:
        timer.cancel()


class RequestLog:
    # The database cannot take writes now (the batch is kept and retried); the Postgres log widens it.
    _ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str, *, flush_interval_s: float = 0.5, batch_size: int = 500,
                 max_buffer_rows: int = 10_000, overflow: str = "spill", max_spill_mb: float = 100.0,
                 busy_timeout_s: float = 5.0, retry_max_interval_s: float = 5.0,
                 close_timeout_s: float = 5.0, retention_days: float | None = None,
                 spill_path: str | None = None, content_retention_days: float | None = None) -> None:
        self.path = path
        self.retention = Retention(retention_days) if retention_days else None  # store/retention.py
        self.content_retention = ContentRetention(content_retention_days) if content_retention_days else None
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_buffer_rows = max_buffer_rows
        self.busy_timeout_s = busy_timeout_s
        self.retry_max_interval_s = retry_max_interval_s
        self.close_timeout_s = close_timeout_s
        spill_at = spill_path or path  # spill files go next to this path
        self.spill: SpillFile | None = (SpillFile(spill_at, int(max_spill_mb * 1024 * 1024))
                                        if overflow == "spill" and spill_at != ":memory:" else None)
        self.written = 0  # rows on disk (replayed spill rows included)
        self.spilled = 0  # rows sent to a spill file
        self.dropped = 0  # rows lost: buffer and spill full, spill unwritable, or refused by the database
        self.failures = 0  # consecutive failed writes; 0 = the database takes writes
        self.last_error: str | None = None
        self._buffer: list[Row] = []
        self._spilling = 0  # rows handed to the spill thread and not yet written
        self._spill_tasks: set[asyncio.Future[Any]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None
        self._thread: SerialThread | None = None
        self._spill_thread: ThreadPoolExecutor | None = None
        self._replay_due = self.spill is not None  # files left by an earlier run are replayed first
        self._last_warning = 0.0

    @classmethod
    def from_config(cls, cfg: RequestLogConfig) -> RequestLog:
        return cls(cfg.path, flush_interval_s=cfg.flush_interval_s, batch_size=cfg.batch_size,
                   max_buffer_rows=cfg.max_buffer_rows, overflow=cfg.overflow, max_spill_mb=cfg.max_spill_mb,
                   busy_timeout_s=cfg.busy_timeout_s, retry_max_interval_s=cfg.retry_max_interval_s,
                   close_timeout_s=cfg.close_timeout_s, retention_days=cfg.retention_days,
                   content_retention_days=cfg.content_retention_days)

    @property
    def available(self) -> bool:
        """Whether the last write reached the database."""
        return self.failures == 0

    @property
    def pending(self) -> int:
        """Rows held in memory: the buffer and rows on their way to the spill file."""
        return len(self._buffer) + self._spilling

    # --- the request path ---------------------------------------------------------------------
    def record(self, row: Row) -> None:
        """Queue one row (from `request_row`); on the request path, so it only appends."""
        buf = self._buffer
        if len(buf) >= self.max_buffer_rows:
            self._overflow(row)
            return
        buf.append(row)
        if len(buf) >= self.batch_size:
            self._wake.set()

    def _overflow(self, row: Row) -> None:
        """The buffer is full: hand it to the spill thread (one hand-off at a time), else drop the row."""
        if self.spill is None or self._spilling or self._thread is None:
            self._lose(1, "the buffer is full" + ("" if self.spill is None else " and a spill is under way"))
            return
        rows, self._buffer = self._buffer, [row]
        self._spill_later(rows)

    def _spill_later(self, rows: list[Row]) -> None:
        self._spilling += len(rows)
        task = asyncio.ensure_future(self._spill_now(rows))
        self._spill_tasks.add(task)
        task.add_done_callback(self._spill_tasks.discard)

    async def _spill_now(self, rows: list[Row]) -> None:
        assert self.spill is not None
        if self._spill_thread is None:
            self._spill_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-log-spill")
        try:
            kept = await asyncio.get_running_loop().run_in_executor(self._spill_thread, self.spill.write, rows)
        except OSError as e:
            kept = 0
            self.last_error = f"spill file {self.spill.path}: {e}"
        finally:
            self._spilling -= len(rows)
        self.spilled += kept
        self._replay_due = True
        if kept < len(rows):
            self._lose(len(rows) - kept, "the spill file is full or cannot be written")

    def _lose(self, n: int, why: str) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            log.error("request log %s: %s; %d rows lost so far (last database error: %s)",
                      self.path, why, self.dropped, self.last_error)

    # --- the writer ---------------------------------------------------------------------------
    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        """Run fn in the log's own thread, after whatever was handed to it before."""
        if self._thread is None:
            self._thread = SerialThread("modelyard-request-log")
        return await self._thread.run(fn, *args)

    async def start(self) -> None:
        """Open the database and start the writer; a database that cannot be opened yet is retried
        by the writer (logged), so the gateway still starts and serves."""
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        try:
            await self._in_thread(self._open)
        except self._ERRORS as e:
            self._failed(e)
        self._task = asyncio.create_task(self._run(), name="modelyard-request-log")

    def _open(self) -> None:
        if self._conn is None:
            self._conn = connect(self.path, self.busy_timeout_s)

    async def _run(self) -> None:
        while not self._stop.is_set():
            if self.failures:  # back off; new rows do not hurry a retry
                delay = min(self.retry_max_interval_s, 0.25 * 2 ** min(self.failures - 1, 10))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            else:
                await _woken(self._wake, self.flush_interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                await self.flush()
                for r in (self.retention, self.content_retention):
                    if r is not None and not self.failures and r.due():
                        await self._in_thread(r.step_on, self)

    async def flush(self) -> bool:
        """Write everything recorded so far (after any batch already being written); True once it is
        on disk, False when the database refused it (the rows stay queued)."""
        async with self._lock:
            if not self._buffer and not (self._replay_due and self.spill is not None):
                return self.failures == 0
            rows, self._buffer = self._buffer, []
            try:
                await self._in_thread(self._write, rows)
            except self._ERRORS as e:
                self._requeue(rows)
                self._failed(e)
                return False
            if self.failures:
                log.warning("request log %s: writing again after %d failed attempts", self.path, self.failures)
            self.failures = 0
            return True

    def _failed(self, e: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(e).__name__}: {e}"
        if self.failures in (1, 10) or self.failures % 100 == 0:
            log.warning("request log %s: write failed (%s), attempt %d; %d rows waiting, retrying",
                        self.path, self.last_error, self.failures, self.pending)

    def _requeue(self, rows: list[Row]) -> None:
        """Put a failed batch back in front of what came in meanwhile, within the buffer's bound."""
        rows.extend(self._buffer)
        self._buffer = rows
        if len(rows) > self.max_buffer_rows:
            if self.spill is not None and not self._spilling:
                self._buffer = []
                self._spill_later(rows)
            else:
                excess = len(rows) - self.max_buffer_rows
                del rows[:excess]
                self._lose(excess, "the buffer is full while the database refuses writes")

    def _write(self, rows: list[Row]) -> None:
        try:
            self._open()
            assert self._conn is not None
            conn = self._conn
            if self._replay_due and self.spill is not None:
                replayed = self.spill.replay(conn)
                self._replay_due = False
                self.written += replayed
                if replayed:
                    log.warning("request log %s: replayed %d spilled rows", self.path, replayed)
            if not rows:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                insert_rows(conn, rows)
                conn.execute("COMMIT")
            except _BAD_ROW:
                conn.execute("ROLLBACK")
                self._write_one_by_one(rows)
                return
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self.written += len(rows)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                self._close_conn()  # reopen next time: the file may have moved, the disk recovered
            raise
        except (sqlite3.Error, OSError):
            self._close_conn()
            raise

    def _write_one_by_one(self, rows: list[Row]) -> None:
        """A batch holding a row the database refuses: keep the others, drop and count that one."""
        assert self._conn is not None
        bad = 0
        self._conn.execute("BEGIN IMMEDIATE")
        for r in rows:
            try:
                self._conn.execute(INSERT, r)
            except _BAD_ROW as e:
                bad += 1
                log.error("request log %s: row for request %r refused (%s); dropped", self.path,
                          r[0] if r else None, e)
        self._conn.execute("COMMIT")
        self.written += len(rows) - bad
        self.dropped += bad

    # --- shutdown -----------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop the writer, write what the database takes within close_timeout_s, spill the rest,
        and log what could not be kept."""
        if self._task is not None:
            self._stop.set()
            self._wake.set()
            await self._task  # it finishes the batch it is writing, then stops
            self._task = None
        deadline = time.monotonic() + self.close_timeout_s
        while not await self.flush() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if self._spill_tasks:
            await asyncio.gather(*self._spill_tasks, return_exceptions=True)
        left, self._buffer = self._buffer, []
        if left:
            if self.spill is not None:
                self._spill_later(left)
                await asyncio.gather(*self._spill_tasks, return_exceptions=True)
                log.error("request log %s: the database refused the last %d rows (%s); %d spilled to %s, "
                          "replayed on the next start", self.path, len(left), self.last_error,
                          self.spilled, self.spill.path)
            else:
                self._lose(len(left), "closing while the database refuses writes")
        if self.dropped:
            log.error("request log %s: closed; %d rows were lost in this run", self.path, self.dropped)
        if self._thread is not None:
            await self._in_thread(self._close_conn)  # after any write still running in that thread
            self._thread.stop()
            self._thread = None
        if self._spill_thread is not None:
            self._spill_thread.shutdown(wait=True)
            self._spill_thread = None

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows (for CLI and tests); opens its own connection."""
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def spent_since(self, column: str, value: str, since: float) -> float:
        """The cost logged at or after `since` by rows whose `column` (key_id, team, user) is `value`:
        what a budget has spent so far. Raises StoreError when the log cannot be read."""
        try:
            rows = self.query(f"SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE {column} = ? AND ts >= ?",
                              (value, since))
        except sqlite3.Error as e:
            if "no such table" in str(e):  # a new database has spent nothing
                return 0.0
            raise StoreError(str(e)) from None
        return float(rows[0][0]) if rows else 0.0
