"""Spend queries over the request log: the log is the spend log (one row per request, refusals and
cache hits included), so there is no second table to drift from it.

Costs are summed as integers of 1e-10 USD (`UNITS`): integer sums are exact whatever the order, so
each group's total is exactly the sum of its rows and the grand total exactly the sum of the groups.
A query reads one time range through the `requests_ts` index (or `requests_key_ts`, `requests_team_ts`,
`requests_user_ts` when filtered by key, team or user).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .location import is_postgres

BY = {"key": "key_id", "team": "team", "user": "user", "model": "model", "deployment": "deployment"}
UNITS = 10_000_000_000  # cost units per USD

_SUMS = ("COUNT(*), SUM(status >= 400), "
         f"SUM(CAST(ROUND(cost_usd * {UNITS}) AS INTEGER)), SUM(CAST(ROUND(saved_usd * {UNITS}) AS INTEGER)), "
         "SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens), SUM(reasoning_tokens)")
_FIELDS = ("requests", "errors", "cost_units", "saved_units", "input_tokens", "output_tokens",
           "cached_input_tokens", "reasoning_tokens")


@dataclass(slots=True)
class SpendLine:
    """One group (or the total): `cost_units` / UNITS is the cost in USD."""

    group: str | None
    requests: int = 0
    errors: int = 0
    cost_units: int = 0
    saved_units: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def cost_usd(self) -> float:
        return self.cost_units / UNITS

    def as_json(self, by: str) -> dict[str, Any]:
        return {by: self.group, "requests": self.requests, "errors": self.errors, "cost_usd": self.cost_usd,
                "saved_usd": self.saved_units / UNITS, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cached_input_tokens": self.cached_input_tokens,
                "reasoning_tokens": self.reasoning_tokens}


def cost_units(cost_usd: float) -> int:
    """One row's cost as the queries count it (SQLite's ROUND: half away from zero), for reconciling
    with rows read elsewhere."""
    x = cost_usd * UNITS
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def spend(path: str, by: str, since: float, until: float, filters: dict[str, str] | None = None,
          busy_timeout_s: float = 5.0) -> tuple[list[SpendLine], SpendLine]:
    """Spend grouped `by` key|team|user|model|deployment over [since, until), most expensive first,
    and the total. `filters`: column name (as in BY) → value, all of which a row must match."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    if is_postgres(path):
        from .postgres.records import spend as pg_spend

        return pg_spend(path, by, since, until, filters)
    col = BY[by]
    where = ["ts >= ?", "ts < ?"]
    params: list[Any] = [since, until]
    for name, value in (filters or {}).items():
        where.append(f"{BY[name]} = ?")
        params.append(value)
    sql = f"SELECT {col}, {_SUMS} FROM requests WHERE {' AND '.join(where)} GROUP BY {col}"
    try:
        conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True, timeout=busy_timeout_s)
    except sqlite3.OperationalError:  # no database yet: nothing spent
        return [], SpendLine(None)
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return [], SpendLine(None)
        raise
    finally:
        conn.close()
    lines = [SpendLine(r[0], *(int(v or 0) for v in r[1:])) for r in rows]
    lines.sort(key=lambda s: (-s.cost_units, -s.requests, str(s.group)))
    total = SpendLine(None)
    for line in lines:
        for f in _FIELDS:
            setattr(total, f, getattr(total, f) + getattr(line, f))
    return lines, total
