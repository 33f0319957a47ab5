"""Stats over windows longer than the live one: read back from the request log's SQLite file.

The rows of the window are read (only the columns the figures need; the routing record reduced
by SQLite's JSON functions to its rule, fallbacks, strategy and reason) into a `Rolling` with
buckets as coarse as the asked step, so the same code (stats_view.py) computes the figures. Reads
use their own short-lived read-only connection; callers on the event loop run `load` in a thread
(`load_async`). At most `MAX_ROWS` rows are read (the newest ones): past that the window is cut
and says so.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any

from .location import is_postgres
from .rolling import Rolling

MAX_ROWS = 500_000

_QUERY = """
SELECT ts, model, deployment, status, cost_usd, latency_ms, ttft_ms, cache, saved_usd, key_id, team,
       json_extract(route, '$.rule'), COALESCE(json_array_length(route, '$.fallbacks'), 0),
       input_tokens, output_tokens,
       CASE WHEN route IS NULL THEN NULL ELSE json_object('strategy', json_extract(route, '$.strategy'),
                                                         'reason', json_extract(route, '$.reason')) END
FROM requests WHERE ts >= ? AND ts < ? ORDER BY ts DESC LIMIT ?
"""


class LogUnavailable(Exception):
    """The request log cannot be read (no file yet, locked past the wait, not a request log)."""


def load(path: str, t0: float, t1: float, bucket_s: float, busy_timeout_s: float = 5.0) -> tuple[Rolling, bool]:
    """The window [t0, t1) of the request log at `path` as a Rolling; and whether it was cut at MAX_ROWS."""
    rows = _pg_rows(path, t0, t1) if is_postgres(path) else _sqlite_rows(path, t0, t1, busy_timeout_s)
    r = Rolling(span_s=t1 - t0 + bucket_s, bucket_s=bucket_s)
    r.started = t0 if len(rows) < MAX_ROWS else (rows[-1][0] if rows else t0)
    for (ts, model, dep, status, cost, lat, ttft, cache, saved, key_id, team, rule, fallbacks, in_tok, out_tok,
         route) in reversed(rows):
        r.add(ts, model, dep, status, cost or 0.0, lat, ttft, cache, saved or 0.0, key_id, team, rule,
              bool(fallbacks), in_tok or 0, out_tok or 0, route)
    return r, len(rows) >= MAX_ROWS


def _sqlite_rows(path: str, t0: float, t1: float, busy_timeout_s: float) -> list[tuple[Any, ...]]:
    if path != ":memory:" and not os.path.exists(path):
        raise LogUnavailable(f"no request log at {path} yet")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout_s)
    except sqlite3.Error as e:
        raise LogUnavailable(f"cannot open the request log {path}: {e}") from None
    try:
        return conn.execute(_QUERY, (t0, t1, MAX_ROWS)).fetchall()
    except sqlite3.Error as e:
        raise LogUnavailable(f"cannot read the request log {path}: {e}") from None
    finally:
        conn.close()


def _pg_rows(location: str, t0: float, t1: float) -> list[tuple[Any, ...]]:
    from .postgres.db import ERRORS
    from .postgres.records import window_rows

    try:
        return window_rows(location, t0, t1, MAX_ROWS)
    except ERRORS as e:
        raise LogUnavailable(f"cannot read the request log {location}: {type(e).__name__}") from None


async def load_async(path: str, t0: float, t1: float, bucket_s: float) -> tuple[Rolling, bool]:
    """`load` in a worker thread: the event loop never waits on the disk."""
    return await asyncio.to_thread(load, path, t0, t1, bucket_s)
