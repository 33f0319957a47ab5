"""Alerts: a budget crossing 50/80/100 % (and its soft limit), once per budget per period; and a
spend-rate anomaly (the last hour's spend above `anomaly_factor` × the trailing 24 h hourly average),
for the whole gateway and per key, team or user (`anomaly_scopes`).

Each alert is logged (logger `modelyard.alerts`, WARNING) and POSTed as JSON to every configured
webhook by a background task, with retries and exponential backoff, off the request path: the
request path only compares numbers and puts the alert on a queue. Spend-rate history is kept as
per-minute cost buckets over 25 hours for the whole gateway, and as 10-minute buckets (a fixed
ring of 150 floats) for each key, team or user with spend, at most `anomaly_max_scopes` of them;
both are seeded at start from the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from array import array
from typing import TYPE_CHECKING, Any

import orjson

from ..config import AlertsConfig
from ..store.rows import Row
from ..types import Budget
from .webhooks import BlockedAddress, post_json

if TYPE_CHECKING:
    from ..store.sqlite import RequestLog
    from .budgets import Period

log = logging.getLogger("modelyard.alerts")

MINUTES = 25 * 60  # the spend-rate ring: the last hour + the 24 before it
QUEUE_MAX = 1000


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SpendRate:
    """Cost per minute over the last 25 hours, and the anomaly test over it."""

    def __init__(self) -> None:
        self.stamps = [-1] * MINUTES
        self.costs = [0.0] * MINUTES

    def add(self, ts: float, cost: float) -> None:
        m = int(ts // 60)
        i = m % MINUTES
        if self.stamps[i] != m:
            self.stamps[i], self.costs[i] = m, 0.0
        self.costs[i] += cost

    def hours(self, now: float) -> tuple[float, float]:
        """(the last 60 minutes' spend, the hourly average over the 24 hours before them)."""
        m = int(now // 60)
        last = trailing = 0.0
        for i in range(MINUTES):
            age = m - self.stamps[i]
            if 0 <= age < 60:
                last += self.costs[i]
            elif 60 <= age < MINUTES:
                trailing += self.costs[i]
        return last, trailing / 24


BUCKET_S = 600  # a scope's spend-rate bucket: 10 minutes
BUCKETS = 25 * 3600 // BUCKET_S  # the last hour (6 buckets) + the 24 hours before it (144)
LAST = 3600 // BUCKET_S


class ScopeRate:
    """One scope's spend per 10 minutes over the last 25 hours: a ring of 150 floats whose newest
    bucket is `head` (older ones are cleared as time moves on)."""

    __slots__ = ("checked", "costs", "head", "quiet_until")

    def __init__(self) -> None:
        self.costs = array("d", bytes(8 * BUCKETS))
        self.head = -1  # the newest bucket number written
        self.checked = -1  # the minute of the last anomaly test
        self.quiet_until = 0.0  # one alert per hour at most

    def add(self, ts: float, cost: float) -> None:
        b = int(ts // BUCKET_S)
        if b > self.head:
            costs = self.costs
            for n in range(max(self.head + 1, b - BUCKETS + 1), b + 1):
                costs[n % BUCKETS] = 0.0
            self.head = b
        elif b <= self.head - BUCKETS:
            return  # older than the ring
        self.costs[b % BUCKETS] += cost

    def hours(self, now: float) -> tuple[float, float]:
        """(the spend of the current bucket and the five before it, the hourly average over the 24
        hours before those)."""
        nb = int(now // BUCKET_S)
        last = trailing = 0.0
        for b in range(max(nb - BUCKETS + 1, self.head - BUCKETS + 1), min(nb, self.head) + 1):
            if nb - b < LAST:
                last += self.costs[b % BUCKETS]
            else:
                trailing += self.costs[b % BUCKETS]
        return last, trailing / 24


class Alerts:
    """Decides when to alert (budgets, spend rate) and delivers alerts to webhooks."""

    def __init__(self, cfg: AlertsConfig) -> None:
        self.cfg = cfg
        self._levels: dict[float | None, tuple[float, ...]] = {}  # a budget's soft_pct -> its thresholds, sorted
        self.rate = SpendRate()
        scopes = set(cfg.anomaly_scopes)
        self._global = "global" in scopes
        self._by = tuple(k for k in ("key", "team", "user") if k in scopes)
        self._by_key, self._by_team, self._by_user = "key" in scopes, "team" in scopes, "user" in scopes
        # per kind: key id / team / user name -> its spend ring (at most anomaly_max_scopes each)
        self._keys: dict[str, ScopeRate] = {}
        self._teams: dict[str, ScopeRate] = {}
        self._users: dict[str, ScopeRate] = {}
        self.rings = {"key": self._keys, "team": self._teams, "user": self._users}
        self._fired: set[tuple[str, str, float]] = set()  # (scope, period id, threshold %)
        self._checked_minute = -1
        self._anomaly_until = 0.0  # one spend-rate alert per hour at most
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.history: asyncio.Task[None] | None = None  # reading the spend history (started by `start`)
        self.delivered = 0
        self.failed = 0

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, log_db: RequestLog | None = None) -> None:
        if log_db is not None and self.history is None:
            # Read in the background: the queries grow with the log's last 25 hours, and start-up
            # (the first request) must not wait for them. Until they are in, averages are 0: no alert.
            self.history = asyncio.create_task(self._read_history(log_db, time.time()), name="modelyard-alerts-history")
        if self.cfg.webhooks and self._task is None:
            self._queue = asyncio.Queue(QUEUE_MAX)
            self._task = asyncio.create_task(self._send_loop(), name="modelyard-alerts")

    async def _read_history(self, log_db: RequestLog, until: float) -> None:
        """The spend before `until` (start-up), from the request log; what is spent after is observed.
        Each query's rows are added at once, so a test never sees half a kind's history."""
        with contextlib.suppress(Exception):  # no log yet: no history, no anomaly until there is
            for minute, cost in await asyncio.to_thread(
                    log_db.query, "SELECT CAST(ts / 60 AS INTEGER), SUM(cost_usd) FROM requests "
                                  "WHERE ts >= ? AND ts < ? GROUP BY 1", (until - MINUTES * 60, until)):
                self.rate.add(minute * 60.0, float(cost or 0.0))
            for kind in self._by:
                column = "key_id" if kind == "key" else kind
                for name, bucket, cost in await asyncio.to_thread(
                        log_db.query, f"SELECT {column}, CAST(ts / {BUCKET_S} AS INTEGER), SUM(cost_usd) FROM requests "
                                      f"WHERE ts >= ? AND ts < ? AND {column} IS NOT NULL AND cost_usd > 0 "
                                      "GROUP BY 1, 2", (until - BUCKETS * BUCKET_S, until)):
                    scope = self._ring(kind, str(name))
                    if scope is not None:
                        scope.add(bucket * float(BUCKET_S), float(cost))

    async def close(self, wait_s: float = 2.0) -> None:
        """Deliver what is queued or being sent (briefly), then stop."""
        if self.history is not None and not self.history.done():
            self.history.cancel()
        if self._task is None:
            return
        if self._queue is not None:  # (join also waits for the alert taken from the queue and in flight)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    # --- deciding (request path: compare numbers, queue) ---------------------------------------
    def budget_spend(self, b: Budget, p: Period, spent: float, loaded: bool = False) -> float:
        """A budget's spend changed (`loaded`: read at start-up — thresholds already crossed then
        were alerted by the process that crossed them, so they are only marked). Returns the spend
        below which no further threshold can be crossed (inf: none left), for the caller to skip
        the calls that could not alert."""
        if b.limit_usd <= 0:
            return math.inf
        pct = spent / b.limit_usd * 100
        for t in self._thresholds(b):
            if pct < t:
                return t * b.limit_usd / 100 * (1 - 1e-9)  # (a hair under: rounding never skips a crossing)
            k = (b.scope, p.id, t)
            if k in self._fired:
                continue
            self._fired.add(k)
            if loaded:
                continue
            soft = b.soft_pct is not None and t == b.soft_pct
            reset = "never" if p.reset is None else _iso(p.reset)
            self.fire({
                "type": "budget_soft_limit" if soft else "budget_threshold", "scope": b.scope,
                "period": b.period, "period_id": p.id, "threshold_pct": t, "spent_usd": round(spent, 6),
                "limit_usd": b.limit_usd, "resets_at": None if p.reset is None else reset,
                "message": f"budget {b.scope} ({b.period} {p.id}) has spent ${spent:.4f} of ${b.limit_usd:.2f} "
                           f"({pct:.0f} %, past {'the soft limit ' if soft else ''}{t:g} %); resets {reset}",
            })
        return math.inf

    def _thresholds(self, b: Budget) -> tuple[float, ...]:
        """The configured thresholds plus the budget's soft limit, sorted (worked out once per soft limit:
        every settle asks)."""
        levels = self._levels.get(b.soft_pct)
        if levels is None:
            ts = set(self.cfg.thresholds)
            if b.soft_pct is not None:
                ts.add(b.soft_pct)
            levels = self._levels[b.soft_pct] = tuple(sorted(ts))
        return levels

    def observe(self, row: Row) -> None:
        """A gateway observer: count the row's cost (globally and on its key, team, user); test each
        spend rate at most once a minute."""
        ts, cost = row.ts, row.cost_usd
        # Worked out once for every ring the cost goes into, in integers: a float's `//` calls fmod,
        # which loops over the exponent gap (hundreds of instructions for an epoch time).
        seconds = int(ts)
        minute = seconds // 60
        if cost:
            rate, i = self.rate, minute % MINUTES
            if rate.stamps[i] == minute:
                rate.costs[i] += cost
            else:
                rate.add(ts, cost)
            if self._by:
                bucket = seconds // BUCKET_S
                if self._by_key and row.key_id is not None:
                    self._spend(self._keys, "key", row.key_id, ts, bucket, minute, cost)
                if self._by_team and row.team is not None:
                    self._spend(self._teams, "team", row.team, ts, bucket, minute, cost)
                if self._by_user and row.user is not None:
                    self._spend(self._users, "user", row.user, ts, bucket, minute, cost)
        if minute != self._checked_minute:
            self._checked_minute = minute
            if self._global:
                self.check_rate(ts)

    @property
    def scopes(self) -> dict[str, ScopeRate]:
        """Every tracked scope by its name ("key:<id>", "team:<name>", "user:<name>")."""
        return {f"{kind}:{name}": r for kind, rings in self.rings.items() for name, r in rings.items()}

    def _spend(self, rings: dict[str, ScopeRate], kind: str, name: str, ts: float, bucket: int, minute: int,
               cost: float) -> None:
        """`cost` spent by a scope at `ts` (in 10-minute `bucket`, `minute`)."""
        ring = rings.get(name) or self._ring(kind, name)
        if ring is None:
            return
        if bucket == ring.head:
            ring.costs[bucket % BUCKETS] += cost
        else:
            ring.add(ts, cost)
        if minute != ring.checked:
            ring.checked = minute
            self._check_scope(f"{kind}:{name}", ring, ts)

    def _ring(self, kind: str, name: str) -> ScopeRate | None:
        """The scope's spend ring, made on first spend; at the cap, the longest-tracked one of its kind
        is dropped."""
        rings = self.rings[kind]
        ring = rings.get(name)
        if ring is None:
            if self.cfg.anomaly_max_scopes <= 0:
                return None
            if len(rings) >= self.cfg.anomaly_max_scopes:
                del rings[next(iter(rings))]
            ring = rings[name] = ScopeRate()
        return ring

    def check_rate(self, now: float) -> None:
        if now < self._anomaly_until:
            return
        last, avg = self.rate.hours(now)
        if self._anomalous(last, avg):
            self._anomaly_until = now + 3600
            self._fire_rate("global", "spend", last, avg)

    def _check_scope(self, name: str, scope: ScopeRate, now: float) -> None:
        if now < scope.quiet_until:
            return
        last, avg = scope.hours(now)
        if self._anomalous(last, avg):
            scope.quiet_until = now + 3600
            self._fire_rate(name, f"spend of {name}", last, avg)

    def _anomalous(self, last: float, avg: float) -> bool:
        return avg > 0 and last > self.cfg.anomaly_factor * avg and last >= self.cfg.anomaly_min_usd

    def _fire_rate(self, scope: str, what: str, last: float, avg: float) -> None:
        k = self.cfg.anomaly_factor
        self.fire({"type": "spend_rate_anomaly", "scope": scope, "last_hour_usd": round(last, 6),
                   "trailing_hourly_avg_usd": round(avg, 6), "factor": k,
                   "message": f"{what} in the last hour ${last:.4f} is {last / avg:.1f}× the trailing 24 h "
                              f"hourly average ${avg:.4f} (alert above {k:g}×)"})

    def fire(self, alert: dict[str, Any]) -> None:
        alert.setdefault("ts", _iso(time.time()))
        log.warning("alert %s: %s", alert["type"], alert["message"])
        if self._queue is not None:
            try:
                self._queue.put_nowait(alert)
            except asyncio.QueueFull:
                self.failed += 1
                log.error("alert queue full: %s not delivered to webhooks", alert["type"])

    # --- delivering (background) ---------------------------------------------------------------
    async def _send_loop(self) -> None:
        assert self._queue is not None
        while True:
            alert = await self._queue.get()
            body = orjson.dumps(alert)
            try:
                await asyncio.gather(*(self._deliver(url, body) for url in self.cfg.webhooks))
            finally:
                self._queue.task_done()

    async def _deliver(self, url: str, body: bytes) -> None:
        cfg = self.cfg
        wait = cfg.backoff_s
        for attempt in range(cfg.retries + 1):
            try:
                status = await asyncio.to_thread(post_json, url, body, timeout_s=cfg.timeout_s,
                                                 allow_private=cfg.allow_private)
            except BlockedAddress as e:
                self.failed += 1
                log.error("alert webhook %s refused: %s", _host(url), e)
                return
            except OSError as e:
                why = f"{type(e).__name__}: {e}"
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                if status < 500 and status not in (408, 429):
                    self.failed += 1
                    log.error("alert webhook %s answered %d: not retried", _host(url), status)
                    return
                why = f"HTTP {status}"
            if attempt < cfg.retries:
                log.info("alert webhook %s failed (%s); retry in %.1f s", _host(url), why, wait)
                await asyncio.sleep(wait)
                wait *= 2
        self.failed += 1
        log.error("alert webhook %s failed %d times; alert dropped", _host(url), cfg.retries + 1)


def _host(url: str) -> str:
    """A webhook named in logs by its host only (its path may hold a token)."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rpartition("@")[2]
