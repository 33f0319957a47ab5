"""The request log in SQLite: one row per request, success or error.

Rows are appended to an in-memory buffer on the request path (a list append, nothing else) and
written in batches by a background task through a worker thread, so the event loop never waits on
the disk. `close()` flushes what is left: accounting never loses a record on a clean shutdown.

The connection lives in one dedicated thread: opening, every write and closing run there, in order.
A write that is still running when its awaiting task is cancelled (shutdown) therefore finishes
before the next write or the close starts — two threads never touch the connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..types import RouteDecision, Usage

COLUMNS = ("id", "ts", "model", "deployment", "provider", "status", "error_type", "error",
           "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost_usd",
           "latency_ms", "ttft_ms", "stream", "user", "api", "route")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
  id TEXT PRIMARY KEY,
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
  route TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
"""


@dataclass(slots=True)
class LogRow:
    id: str
    model: str
    deployment: str | None
    provider: str | None
    status: int
    error_type: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    stream: bool = False
    user: str | None = None
    api: str = "openai"
    decision: RouteDecision | None = None
    ts: float = 0.0

    def as_tuple(self) -> tuple[Any, ...]:
        route = self.decision.log_json() if self.decision else None
        return (self.id, self.ts, self.model, self.deployment, self.provider, self.status,
                self.error_type, self.error, self.input_tokens, self.output_tokens,
                self.cached_input_tokens, self.reasoning_tokens, self.cost_usd, self.latency_ms,
                self.ttft_ms, int(self.stream), self.user, self.api, route)


class RequestLog:
    def __init__(self, path: str, *, flush_interval_s: float = 0.5, batch_size: int = 500) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self._buffer: list[tuple[Any, ...]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._insert = (f"INSERT INTO requests ({', '.join(COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(COLUMNS))})")

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        """Run fn in the log's own thread, after whatever was handed to it before."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-request-log")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self) -> None:
        await self._in_thread(self._open)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name="modelyard-request-log")

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        self._conn = conn

    def record(self, row: LogRow) -> None:
        """Queue one row; called on the request path, so it only appends."""
        row.ts = row.ts or time.time()
        self._queue(row.as_tuple())

    def record_call(self, rid: str, model: str, deployment: str, provider: str, status: int,
                    error_type: str | None, error: str | None, usage: Usage, cost_usd: float,
                    latency_ms: float, ttft_ms: float | None, stream: bool, user: str | None, api: str,
                    decision: RouteDecision | None) -> None:
        """`record` of one upstream call's row, as the tuple `LogRow.as_tuple` makes: the gateway
        logs every request through here, so no LogRow is built and read back in between."""
        self._queue((rid, time.time(), model, deployment, provider, status, error_type, error,
                     usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens,
                     cost_usd, latency_ms, ttft_ms, int(stream), user, api,
                     decision.log_json() if decision else None))

    def _queue(self, values: tuple[Any, ...]) -> None:
        self._buffer.append(values)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything recorded so far; returns once it is on disk, even when another
        flush (the background one) was already writing."""
        async with self._lock:
            if not self._buffer or self._conn is None:
                return
            rows, self._buffer = self._buffer, []
            await self._in_thread(self._write, rows)

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        assert self._conn is not None
        self._conn.execute("BEGIN")
        self._conn.executemany(self._insert, rows)
        self._conn.execute("COMMIT")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._thread is not None:
            await self._in_thread(self._close_conn)  # after any write still running in that thread
            self._thread.shutdown(wait=False)
            self._thread = None

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows (for CLI and tests); opens its own connection."""
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
