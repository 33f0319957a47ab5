"""Alerts: budget thresholds and spend-rate anomalies, delivered to a webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from modelyard.accounting.alerts import Alerts
from modelyard.accounting.budgets import Budgets, period_of
from modelyard.config import AlertsConfig
from modelyard.errors import ConfigError
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.state import MemoryState
from modelyard.store.rows import request_row
from modelyard.store.sqlite import RequestLog
from modelyard.types import Budget, Caller, ChatRequest, Message


class Receiver:
    """A webhook that answers 500 to its first POST, then 200."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail_first = 1
        self.delay_s = 0.0  # before answering a received POST
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail_first:
            self.fail_first -= 1
            return web.Response(status=500)
        self.posts.append(await request.json())
        self.got.set()
        await asyncio.sleep(self.delay_s)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> Any:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}/hook"  # type: ignore[attr-defined]
    yield r
    await runner.cleanup()


async def test_budget_alerts_delivered_with_retry(tmp_path: Path, receiver: Any) -> None:
    cfg = parse_config({"deployments": {"d": {"provider": "sim", "model": "sim/frontier"}},
                        "alerts": {"webhooks": [receiver.url], "allow_private": True, "backoff_s": 0.05},
                        "server": {"request_log": {"path": str(tmp_path / "l.db")}}}, "t.yaml")
    async with Gateway(cfg) as gw:
        probe = ChatRequest(model="d", messages=[Message("user", "hello")], max_tokens=30)
        cost = (await gw.chat(probe)).cost_usd
        limit = 1.0
        c = Caller(key_id="k1", budgets=(Budget("key:k1", limit, "daily"),))
        period = period_of("daily", time.time())
        gw.resilience.store.budget_seed("key:k1", period.id, 0.8 * limit - cost / 2)  # just under 80 %
        r = ChatRequest(model="d", messages=[Message("user", "hello")], max_tokens=30)
        r.caller = c
        await gw.chat(r)  # crosses 50 (never alerted in this period) and 80
        await gw.chat(probe)  # (another key: no alert)
        async with asyncio.timeout(10):
            while len(receiver.posts) < 2:
                await asyncio.sleep(0.02)
    kinds = sorted((p["type"], p["threshold_pct"]) for p in receiver.posts)
    assert kinds == [("budget_threshold", 50), ("budget_threshold", 80)]
    assert all(p["scope"] == "key:k1" and p["limit_usd"] == 1.0 for p in receiver.posts)
    assert receiver.fail_first == 0  # the first POST got a 500 and was retried
    assert gw.accounting.alerts is not None and gw.accounting.alerts.delivered == len(receiver.posts)


async def test_close_waits_for_an_alert_in_flight(receiver: Any) -> None:
    """An alert the webhook has received but not yet answered is counted delivered, not cancelled:
    close waits (briefly) for the one being sent as well as for the queued ones."""
    receiver.fail_first = 0
    receiver.delay_s = 0.3  # the POST is received, the answer comes later
    alerts = Alerts(AlertsConfig(webhooks=[receiver.url], allow_private=True, backoff_s=0.01))
    await alerts.start()
    alerts.fire({"type": "t", "message": "m"})
    async with asyncio.timeout(10):
        await receiver.got.wait()  # taken from the queue, the POST on its way back
    await alerts.close()
    assert alerts.delivered == 1 and alerts.failed == 0


def test_private_webhook_refused_at_config_load() -> None:
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.5/x", "http://169.254.169.254/latest", "http://localhost/x",
                "http://[::ffff:127.0.0.1]/x"):
        with pytest.raises(ConfigError, match="allow_private"):
            parse_config({"deployments": {"d": {"provider": "sim", "model": "sim/fast"}},
                          "alerts": {"webhooks": [url]}}, "t.yaml")
    with pytest.raises(ConfigError, match="not an http"):
        parse_config({"deployments": {"d": {"provider": "sim", "model": "sim/fast"}},
                      "alerts": {"webhooks": ["ftp://example.com/x"]}}, "t.yaml")
    parse_config({"deployments": {"d": {"provider": "sim", "model": "sim/fast"}},
                  "alerts": {"webhooks": ["https://hooks.example.com/x"]}}, "t.yaml")


async def test_hostname_resolving_to_loopback_is_refused_at_send_time(receiver: Any) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost.")  # a name: passes the load check, resolves to loopback
    alerts = Alerts(AlertsConfig(webhooks=[url], backoff_s=0.01, retries=0))
    await alerts.start()
    alerts.fire({"type": "t", "message": "m"})
    await alerts.close()
    assert alerts.failed == 1 and receiver.posts == [] and receiver.fail_first == 1  # never connected


def test_spend_rate_anomaly() -> None:
    alerts = Alerts(AlertsConfig(anomaly_factor=3, anomaly_min_usd=0.5))
    fired: list[dict[str, Any]] = []
    alerts.fire = fired.append  # type: ignore[method-assign]
    now = time.time()
    for h in range(2, 25):  # a steady $1/hour for the previous day
        alerts.observe(request_row(f"r{h}", "m", 200, cost_usd=1.0)._replace(ts=now - h * 3600))
    alerts.observe(request_row("x", "m", 200, cost_usd=2.0)._replace(ts=now - 600))
    assert fired == []  # $2 in the last hour: under 3×
    alerts._checked_minute = -1
    alerts.observe(request_row("y", "m", 200, cost_usd=2.0)._replace(ts=now - 60))
    assert len(fired) == 1 and fired[0]["type"] == "spend_rate_anomaly" and fired[0]["last_hour_usd"] == 4.0
    alerts._checked_minute = -1
    alerts.observe(request_row("z", "m", 200, cost_usd=9.0)._replace(ts=now))
    assert len(fired) == 1  # once per hour


def test_scope_rate_ring() -> None:
    from modelyard.accounting.alerts import BUCKET_S, ScopeRate

    s = ScopeRate()
    now = 1_000_000 * BUCKET_S + 30.0  # the last hour: this bucket and the five before it
    for h in range(24):
        s.add((1_000_000 - 6) * BUCKET_S - h * 3600 + 1, 1.0)  # $1 in each of the 24 hours before
    s.add(now - 10, 5.0)
    s.add(now - 26 * 3600, 100.0)  # older than the ring: ignored
    assert s.hours(now) == (5.0, pytest.approx(1.0))
    assert s.hours(now + 25 * 3600) == (0.0, 0.0)  # a day of silence later: nothing left
    s.add(now + 30 * 3600, 2.0)  # the ring moves on: every old bucket is cleared
    assert s.hours(now + 30 * 3600) == (2.0, 0.0) and sum(s.costs) == 2.0


def test_scopes_are_bounded() -> None:
    alerts = Alerts(AlertsConfig(anomaly_max_scopes=3))
    for i in range(5):
        alerts.observe(request_row(f"r{i}", "m", 200, cost_usd=0.1, caller=Caller(key_id=f"k{i}")))
    assert list(alerts.scopes) == ["key:k2", "key:k3", "key:k4"]  # the longest-tracked dropped first
    off = Alerts(AlertsConfig(anomaly_scopes=["global"]))
    off.observe(request_row("r", "m", 200, cost_usd=0.1, caller=Caller(key_id="k", team="t")))
    assert off.scopes == {}


async def test_per_key_and_team_anomaly_delivered(tmp_path: Path, receiver: Any) -> None:
    """A key whose spend jumps is alerted (and its team), while the gateway as a whole, carried by a
    steadier key, is not: history from the request log at start, alerts to a loopback webhook."""
    data = {"deployments": {"d": {"provider": "sim", "model": "sim/frontier"}},
            "alerts": {"webhooks": [receiver.url], "allow_private": True, "backoff_s": 0.05,
                       "anomaly_factor": 3, "anomaly_min_usd": 0},
            "server": {"request_log": {"path": str(tmp_path / "l.db")}}}
    now = time.time()
    async with Gateway(parse_config(data, "t.yaml")) as gw:  # yesterday: k2 spends $1/h, k1 a trickle
        for h in range(2, 25):
            for key, team, cost in (("k2", "t2", 1.0), ("k1", "t1", 1e-6)):
                gw.emit(request_row(f"{key}-{h}", "d", 200, cost_usd=cost,
                                    caller=Caller(key_id=key, team=team))._replace(ts=now - h * 3600))
    async with Gateway(parse_config(data, "t.yaml")) as gw:
        alerts = gw.accounting.alerts
        assert alerts is not None and alerts.history is not None
        await alerts.history  # read after start-up, in the background
        assert {"key:k1", "key:k2", "team:t1", "team:t2"} <= set(alerts.scopes)
        r = ChatRequest(model="d", messages=[Message("user", "hello")], max_tokens=30)
        r.caller = Caller(key_id="k1", team="t1")
        await gw.chat(r)  # a cent or so: thousands of times k1's trickle, nothing next to the gateway's $1/h
        async with asyncio.timeout(10):
            while len(receiver.posts) < 2:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # (room for an unwanted third)
    got = sorted(p["scope"] for p in receiver.posts)
    assert got == ["key:k1", "team:t1"], receiver.posts
    assert all(p["type"] == "spend_rate_anomaly" and p["trailing_hourly_avg_usd"] > 0 for p in receiver.posts)
    assert "key:k1" in next(p["message"] for p in receiver.posts if p["scope"] == "key:k1")


async def test_start_does_not_wait_for_the_spend_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The history query (the log's last 25 hours: it grows with traffic) runs after start-up; a row
    observed meanwhile is counted once, whether or not it reached the log before the query ran."""
    data = {"deployments": {"d": {"provider": "sim", "model": "sim/fast"}},
            "server": {"request_log": {"path": str(tmp_path / "l.db")}}}
    now = time.time()
    async with Gateway(parse_config(data, "t.yaml")) as gw:
        gw.emit(request_row("old", "d", 200, cost_usd=1.0, caller=Caller(key_id="k"))._replace(ts=now - 7200))
    release = threading.Event()
    query = RequestLog.query

    def slow_query(self: RequestLog, *args: Any) -> Any:
        release.wait(30)  # the history's queries wait until the test lets them run
        return query(self, *args)

    monkeypatch.setattr(RequestLog, "query", slow_query)
    gw = Gateway(parse_config(data, "t.yaml"))
    try:
        async with asyncio.timeout(10):
            await gw.start()  # returns while the history is still being read
        alerts = gw.accounting.alerts
        assert alerts is not None and alerts.history is not None and not alerts.history.done()
        gw.emit(request_row("new", "d", 200, cost_usd=0.5, caller=Caller(key_id="k")))
        async with asyncio.timeout(10):  # the new row reaches the log before the history is read
            while not sqlite3.connect(tmp_path / "l.db").execute(
                    "SELECT COUNT(*) FROM requests WHERE id = 'new'").fetchone()[0]:
                await asyncio.sleep(0.05)
        release.set()
        await alerts.history
        assert sum(alerts.scopes["key:k"].costs) == pytest.approx(1.5)
        assert alerts.rate.hours(time.time() + 1)[0] == pytest.approx(0.5)  # the last hour: the new row once
    finally:
        release.set()
        await gw.close()


def test_budget_thresholds_fire_at_the_settle_that_crosses_them() -> None:
    """Settles between thresholds skip the alert check; none is missed or late, also when one
    settle crosses two thresholds, and each fires once."""
    alerts = Alerts(AlertsConfig(thresholds=[50, 80, 100]))
    fired: list[tuple[float, int]] = []
    step = 0
    alerts.fire = lambda alert: fired.append((alert["threshold_pct"], step))  # type: ignore[method-assign]
    store = MemoryState()
    budgets = Budgets(store, None, alerts.budget_spend)
    b = Budget("key:k", 1.0, "monthly", soft_pct=65)
    p = budgets.periods("monthly", time.time())
    held = ((b, p),)
    expected: list[tuple[float, int]] = []
    costs = [0.007] * 60 + [0.3] + [0.003] * 60 + [0.05] * 5
    for step, cost in enumerate(costs):
        before = store.budget_spend(b.scope, p.id)[0] / b.limit_usd * 100
        budgets.settle(held, 0.0, cost)  # (no reservation: the spend goes past the limit)
        after = store.budget_spend(b.scope, p.id)[0] / b.limit_usd * 100
        expected += [(t, step) for t in (50, 65, 80, 100) if before < t <= after]
    assert fired == expected
    assert [t for t, _ in fired] == [50, 65, 80, 100]
    assert len({s for t, s in fired if t in (50, 65)}) == 1  # the 0.3 settle crossed both
