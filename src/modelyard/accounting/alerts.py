"""Alerts: a budget crossing 50/80/100 % (and its soft limit), once per budget per period; and a
spend-rate anomaly (the last hour's spend above `anomaly_factor` × the trailing 24 h hourly average).

Each alert is logged (logger `modelyard.alerts`, WARNING) and POSTed as JSON to every configured
webhook by a background task, with retries and exponential backoff, off the request path: the
request path only compares numbers and puts the alert on a queue. Spend-rate history is kept as
per-minute cost buckets over 25 hours, seeded at start from the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
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


class Alerts:
    """Decides when to alert (budgets, spend rate) and delivers alerts to webhooks."""

    def __init__(self, cfg: AlertsConfig) -> None:
        self.cfg = cfg
        self.rate = SpendRate()
        self._fired: set[tuple[str, str, float]] = set()  # (scope, period id, threshold %)
        self._checked_minute = -1
        self._anomaly_until = 0.0  # one spend-rate alert per hour at most
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, log_db: RequestLog | None = None) -> None:
        if log_db is not None:
            with contextlib.suppress(Exception):  # no log yet: no history, no anomaly until there is
                since = time.time() - MINUTES * 60
                for minute, cost in await asyncio.to_thread(
                        log_db.query, "SELECT CAST(ts / 60 AS INTEGER), SUM(cost_usd) FROM requests "
                                      "WHERE ts >= ? GROUP BY 1", (since,)):
                    self.rate.add(minute * 60.0, float(cost or 0.0))
        if self.cfg.webhooks and self._task is None:
            self._queue = asyncio.Queue(QUEUE_MAX)
            self._task = asyncio.create_task(self._send_loop(), name="modelyard-alerts")

    async def close(self, wait_s: float = 2.0) -> None:
        """Deliver what is queued (briefly), then stop."""
        if self._task is None:
            return
        if self._queue is not None and not self._queue.empty():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._queue.join()
        self._task.cancel()
        for t in list(self._deliveries):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    # --- deciding (request path: compare numbers, queue) ---------------------------------------
    def budget_spend(self, b: Budget, p: Period, spent: float, loaded: bool = False) -> None:
        """A budget's spend changed (`loaded`: read at start-up — thresholds already crossed then
        were alerted by the process that crossed them, so they are only marked)."""
        if b.limit_usd <= 0:
            return
        pct = spent / b.limit_usd * 100
        for t in self._thresholds(b):
            if pct < t:
                break
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

    def _thresholds(self, b: Budget) -> list[float]:
        ts = set(self.cfg.thresholds)
        if b.soft_pct is not None:
            ts.add(b.soft_pct)
        return sorted(ts)

    def observe(self, row: Row) -> None:
        """A gateway observer: count the row's cost; test the spend rate once a minute."""
        if row.cost_usd:
            self.rate.add(row.ts, row.cost_usd)
        minute = int(row.ts // 60)
        if minute != self._checked_minute:
            self._checked_minute = minute
            self.check_rate(row.ts)

    def check_rate(self, now: float) -> None:
        if now < self._anomaly_until:
            return
        last, avg = self.rate.hours(now)
        k = self.cfg.anomaly_factor
        if avg > 0 and last > k * avg and last >= self.cfg.anomaly_min_usd:
            self._anomaly_until = now + 3600
            self.fire({"type": "spend_rate_anomaly", "last_hour_usd": round(last, 6),
                       "trailing_hourly_avg_usd": round(avg, 6), "factor": k,
                       "message": f"spend in the last hour ${last:.4f} is {last / avg:.1f}× the trailing 24 h "
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
