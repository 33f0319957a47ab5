"""An experiment's samples, read from the request log (its SQLite file, or Postgres): per variant every request's
status, and for the successful ones latency and cost, the latest feedback score (store/feedback.py)
and the latest judge score (the `experiment_scores` table, judge.py).

Rows are found by their `experiment` column (`name=variant`, or `name=control; no <unit>` for requests
that carried no unit value: counted apart as `unassigned`, since they were not randomised). Reads are
plain blocking SQLite: the server calls them through `asyncio.to_thread`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ..store.location import is_postgres

SCORES = """
CREATE TABLE IF NOT EXISTS experiment_scores (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id TEXT NOT NULL,
  experiment TEXT NOT NULL,
  variant TEXT NOT NULL,
  ts REAL NOT NULL,
  score REAL NOT NULL,
  judge TEXT NOT NULL,
  reason TEXT
);
CREATE INDEX IF NOT EXISTS experiment_scores_request ON experiment_scores (request_id);
"""


@dataclass(slots=True)
class VariantData:
    requests: int = 0
    successes: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests
    costs_usd: list[float] = field(default_factory=list)  # successful requests
    feedback: list[float] = field(default_factory=list)  # latest feedback score per scored request
    judge: list[float] = field(default_factory=list)  # latest judge score per graded request
    first_ts: float | None = None
    last_ts: float | None = None


@dataclass(slots=True)
class ExperimentData:
    variants: dict[str, VariantData]
    unassigned: int = 0  # requests without the unit's value, served by control, left out of the comparison


class LogUnreadable(Exception):
    """The request log cannot be opened or is not a modelyard request log."""


def read_experiment(path: str, name: str, variants: list[str], *, since: float | None = None) -> ExperimentData:
    """The samples of experiment `name` (rows logged at or after `since`, a Unix time, when given)."""
    data = ExperimentData({v: VariantData() for v in variants})
    rows = _pg_rows(path, name, since) if is_postgres(path) else _sqlite_rows(path, name, since)
    prefix = len(name) + 1
    for tag, status, latency, cost, ts, fb, js in rows:
        if ";" in tag:
            data.unassigned += 1
            continue
        v = data.variants.get(tag[prefix:])
        if v is None:  # a variant no longer in the config
            continue
        v.requests += 1
        v.first_ts = ts if v.first_ts is None else min(v.first_ts, ts)
        v.last_ts = ts if v.last_ts is None else max(v.last_ts, ts)
        if status != 200:
            continue
        v.successes += 1
        if latency is not None:
            v.latencies_ms.append(latency)
        v.costs_usd.append(cost)
        if fb is not None:
            v.feedback.append(fb)
        if js is not None:
            v.judge.append(js)
    return data


def _sqlite_rows(path: str, name: str, since: float | None) -> list[Any]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as e:
        raise LogUnreadable(f"{path}: cannot open the request log ({e})") from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "requests" not in tables:
            return []
        feedback = ("(SELECT f.score FROM feedback f WHERE f.request_id = r.id ORDER BY f.id DESC LIMIT 1)"
                    if "feedback" in tables else "NULL")
        judged = ("(SELECT s.score FROM experiment_scores s WHERE s.request_id = r.id AND s.experiment = ? "
                  "ORDER BY s.id DESC LIMIT 1)" if "experiment_scores" in tables else "NULL")
        # `name=` … `name>`: every tag of this experiment ('>' follows '='), a range the index serves
        sql = (f"SELECT r.experiment, r.status, r.latency_ms, r.cost_usd, r.ts, {feedback}, {judged} "
               "FROM requests r WHERE r.experiment >= ? AND r.experiment < ?")
        args: list[object] = [name] if "experiment_scores" in tables else []
        args += [f"{name}=", f"{name}>"]
        if since is not None:
            sql += " AND r.ts >= ?"
            args.append(since)
        return conn.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        raise LogUnreadable(f"{path}: not a readable modelyard request log ({e})") from None
    finally:
        conn.close()


def _pg_rows(location: str, name: str, since: float | None) -> list[Any]:
    from ..store.backend import db_errors
    from ..store.postgres.records import experiment_rows

    try:
        return experiment_rows(location, name, since)
    except db_errors(location) as e:
        raise LogUnreadable(f"{location}: cannot read the request log ({type(e).__name__})") from None
