"""Reads of the request log and feedback in Postgres: spend, the dashboard's window, feedback.

The same answers as store/spend.py, stats.py and feedback.py give from SQLite (backend.LogReader and
backend.FeedbackTable): costs summed as integers of 1e-10 USD so totals equal the sum of the rows;
spend reads one time range through the (column, ts) indexes. Errors reaching the database raise the
caller-facing exception of each concern (StoreUnavailable for feedback, LogUnavailable for stats).
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from ...errors import Unavailable
from ..feedback import LoggedRequest, Scored, StoreUnavailable
from ..spend import _FIELDS, BY, UNITS, SpendLine
from .db import ERRORS, q, run

_SUMS = ("COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
         f"SUM(ROUND((cost_usd * {UNITS})::numeric)), SUM(ROUND((saved_usd * {UNITS})::numeric)), "
         "SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens), SUM(reasoning_tokens)")


def spend(location: str, by: str, since: float, until: float,
          filters: dict[str, str] | None = None) -> tuple[list[SpendLine], SpendLine]:
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    col = q(BY[by])
    where = ["ts >= $1", "ts < $2"]
    params: list[Any] = [since, until]
    for name, value in (filters or {}).items():
        params.append(value)
        where.append(f"{q(BY[name])} = ${len(params)}")
    sql = f"SELECT {col}, {_SUMS} FROM requests WHERE {' AND '.join(where)} GROUP BY {col}"

    async def fetch(conn: asyncpg.Connection) -> list[Any]:
        return list(await conn.fetch(sql, *params))

    try:
        rows = run(location, fetch)
    except ERRORS as e:
        raise Unavailable(f"the request log database is unavailable ({type(e).__name__}); retry shortly") from None
    lines = [SpendLine(r[0], *(int(v or 0) for v in tuple(r)[1:])) for r in rows]
    lines.sort(key=lambda s: (-s.cost_units, -s.requests, str(s.group)))
    total = SpendLine(None)
    for line in lines:
        for f in _FIELDS:
            setattr(total, f, getattr(total, f) + getattr(line, f))
    return lines, total


_WINDOW = """
SELECT ts, model, deployment, status, cost_usd, latency_ms, ttft_ms, cache, saved_usd, key_id, team,
       (route::jsonb) ->> 'rule', COALESCE(jsonb_array_length((route::jsonb) -> 'fallbacks'), 0),
       input_tokens, output_tokens,
       CASE WHEN route IS NULL THEN NULL ELSE json_build_object('strategy', (route::jsonb) ->> 'strategy',
                                                                'reason', (route::jsonb) ->> 'reason')::text END
FROM requests WHERE ts >= $1 AND ts < $2 ORDER BY ts DESC LIMIT $3
"""


def window_rows(location: str, t0: float, t1: float, limit: int) -> list[tuple[Any, ...]]:
    """The newest `limit` rows of [t0, t1), newest first, in the columns stats.load reads."""

    async def fetch(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await conn.fetch(_WINDOW, t0, t1, limit)]

    return run(location, fetch)


_SCORED = """
SELECT r.id, r.model, r.deployment, r.status, r.cost_usd, r.input_tokens, r.output_tokens, f.score, f.prompt, r.ts
FROM requests r LEFT JOIN (
  SELECT DISTINCT ON (request_id) request_id, score, prompt FROM feedback ORDER BY request_id, id DESC
) f ON f.request_id = r.id WHERE r.status = 200 ORDER BY r.ts
"""
_PROMPTS = ("SELECT DISTINCT ON (request_id) request_id, prompt FROM feedback WHERE prompt IS NOT NULL "
            "ORDER BY request_id, id DESC")


def read_scored(location: str, *, only_scored: bool = False) -> list[Scored]:
    async def fetch(conn: asyncpg.Connection) -> tuple[list[Any], dict[str, str]]:
        rows = list(await conn.fetch(_SCORED))
        prompts = {r[0]: r[1] for r in await conn.fetch(_PROMPTS)}
        return rows, prompts

    try:
        rows, prompts = run(location, fetch)
    except ERRORS as e:
        raise ValueError(f"{location}: cannot read the request log ({type(e).__name__}: {e})") from None
    out = []
    for r in rows:
        if only_scored and r[7] is None:
            continue
        out.append(Scored(LoggedRequest(*tuple(r)[:7]), r[7], r[8] or prompts.get(r[0]), r[9]))
    return out


def logged_request(location: str, request_id: str) -> LoggedRequest | None:
    async def fetch(conn: asyncpg.Connection) -> Any:
        return await conn.fetchrow("SELECT id, model, deployment, status, cost_usd, input_tokens, output_tokens, "
                                   "key_id FROM requests WHERE id = $1 ORDER BY row_id DESC LIMIT 1", request_id)

    try:
        row = run(location, fetch)
    except ERRORS as e:
        raise StoreUnavailable(f"{type(e).__name__}: {e}") from None
    return LoggedRequest(*tuple(row)) if row else None


def add_feedback(location: str, request_id: str, score: float, comment: str | None, prompt: str | None,
                 source: str) -> int:
    async def insert(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval(
            "INSERT INTO feedback (request_id, ts, score, comment, prompt, source) VALUES ($1, $2, $3, $4, $5, $6) "
            "RETURNING id", request_id, time.time(), score, comment, prompt, source))

    try:
        return run(location, insert)
    except ERRORS as e:
        raise StoreUnavailable(f"{type(e).__name__}: {e}") from None


def new_feedback(location: str, after_id: int, limit: int) -> list[tuple[int, str, float, str | None]]:
    """Feedback rows with a prompt after `after_id`, in id order, with the deployment that served their
    request (routing/learned/online.py learns from them)."""

    async def fetch(conn: asyncpg.Connection) -> list[tuple[int, str, float, str | None]]:
        return [tuple(r) for r in await conn.fetch(
            "SELECT f.id, f.prompt, f.score, (SELECT r.deployment FROM requests r WHERE r.id = f.request_id "
            "ORDER BY r.row_id DESC LIMIT 1) FROM feedback f WHERE f.id > $1 AND f.prompt IS NOT NULL "
            "ORDER BY f.id LIMIT $2", after_id, limit)]

    return run(location, fetch)


def experiment_rows(location: str, name: str, since: float | None) -> list[tuple[Any, ...]]:
    """(experiment, status, latency_ms, cost_usd, ts, latest feedback, latest judge score) of every row
    of experiment `name` (experiments/data.py reads them)."""
    sql = ("SELECT r.experiment, r.status, r.latency_ms, r.cost_usd, r.ts, "
           "(SELECT f.score FROM feedback f WHERE f.request_id = r.id ORDER BY f.id DESC LIMIT 1), "
           "(SELECT s.score FROM experiment_scores s WHERE s.request_id = r.id AND s.experiment = $1 "
           "ORDER BY s.id DESC LIMIT 1) "
           "FROM requests r WHERE r.experiment IS NOT NULL AND starts_with(r.experiment, $2)")
    args: list[Any] = [name, f"{name}="]
    if since is not None:
        sql += " AND r.ts >= $3"
        args.append(since)

    async def fetch(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await conn.fetch(sql, *args)]

    return run(location, fetch)


def add_score(location: str, request_id: str, experiment: str, variant: str, score: float, judge: str,
              reason: str) -> None:
    """One judge score (experiments/judge.py)."""

    async def insert(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO experiment_scores (request_id, experiment, variant, ts, score, judge, reason) "
                           "VALUES ($1, $2, $3, $4, $5, $6, $7)", request_id, experiment, variant, time.time(), score,
                           judge, reason)

    run(location, insert)
