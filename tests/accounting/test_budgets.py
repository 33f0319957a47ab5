"""Budgets through the Gateway on the sim fleet, with the real SQLite request log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from modelyard.accounting.budgets import period_of
from modelyard.errors import BudgetExceeded
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import Budget, Caller, ChatRequest, Message


def gateway(tmp_path: Path, **extra: Any) -> Gateway:
    cfg = parse_config({"deployments": {"frontier": {"provider": "sim", "model": "sim/frontier"},
                                        "fast": {"provider": "sim", "model": "sim/fast"}},
                        "model_groups": {"g": {"deployments": ["frontier", "fast"]}},
                        "server": {"request_log": {"path": str(tmp_path / "log.db")}}, **extra}, "t.yaml")
    return Gateway(cfg, source="t.yaml")


def req(caller: Caller, model: str = "frontier", **kw: Any) -> ChatRequest:
    r = ChatRequest(model=model, messages=[Message("user", "tell me about the sea")], max_tokens=40, **kw)
    r.caller = caller
    return r


def caller(limit: float, scope: str = "key:k1", **kw: Any) -> Caller:
    return Caller(key_id="k1", team="t1", budgets=(Budget(scope, limit, "daily", **kw),))


async def one_cost(tmp_path: Path) -> float:
    async with gateway(tmp_path / "probe") as gw:
        r = await gw.chat(req(Caller()))
        return r.cost_usd


async def test_200_concurrent_requests_never_overspend(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    cost = await one_cost(tmp_path)
    worst = gateway(tmp_path / "probe").deployments["frontier"].card
    budget = cost * 50
    c = caller(budget)
    gw = gateway(tmp_path)
    async with gw:
        results = await asyncio.gather(*(gw.chat(req(c), request_id=f"r{i:03d}") for i in range(200)),
                                       return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(ok) + len(refused) == 200, [r for r in results if isinstance(r, BaseException)
                                          and not isinstance(r, BudgetExceeded)][:3]
    assert ok and refused
    spent = sum(r.cost_usd for r in ok)
    assert spent <= budget + max(r.cost_usd for r in ok)
    assert worst.output_per_m > 0
    rows = gw.request_log.query("SELECT status, error_type, cost_usd FROM requests WHERE key_id = 'k1'")
    assert len(rows) == 200
    assert sum(1 for s, _, _ in rows if s == 200) == len(ok)
    assert sum(1 for s, e, c in rows if s == 429 and e == "budget_exceeded" and c == 0) == len(refused)
    assert sum(c for *_, c in rows) == pytest.approx(spent)
    # the ledger agrees with the log
    p = period_of("daily", __import__("time").time())
    assert gw.resilience.store.budget_spend("key:k1", p.id) == (pytest.approx(spent), 0.0)


async def test_refusal_names_budget_limit_spend_and_reset(tmp_path: Path) -> None:
    c = caller(0.00001, scope="team:t1")
    async with gateway(tmp_path) as gw:
        with pytest.raises(BudgetExceeded) as info:
            await gw.chat(req(c))
    e = info.value
    assert e.status == 429 and e.code == "budget_exceeded" and e.openai_body()["error"]["code"] == "budget_exceeded"
    assert "team:t1" in e.message and "$0.00" in e.message and "spent" in e.message and "resets" in e.message
    assert (b"x-should-retry", b"false") in e.headers()


async def test_stream_settles_at_stream_end(tmp_path: Path) -> None:
    c = caller(1.0)
    async with gateway(tmp_path) as gw:
        s = await gw.stream(req(c, stream=True))
        p = period_of("daily", __import__("time").time())
        assert gw.resilience.store.budget_spend("key:k1", p.id)[1] > 0  # reserved while it runs
        async for _ in s:
            pass
        spent, reserved = gw.resilience.store.budget_spend("key:k1", p.id)
    assert reserved == 0 and spent == pytest.approx(s.cost_usd) and s.cost_usd > 0


async def test_failed_call_releases_its_reservation(tmp_path: Path) -> None:
    cfg = parse_config({"deployments": {"bad": {"provider": "sim", "model": "sim/fast", "sim": {"failure_rate": 1.0}}},
                        "server": {"request_log": {"path": str(tmp_path / "l.db")}}}, "t.yaml")
    c = caller(1.0)
    async with Gateway(cfg) as gw:
        with pytest.raises(Exception):  # noqa: B017  (whatever the sim's failure is)
            await gw.chat(req(c, model="bad"))
        p = period_of("daily", __import__("time").time())
        assert gw.resilience.store.budget_spend("key:k1", p.id) == (0.0, 0.0)


async def test_spend_survives_a_restart(tmp_path: Path) -> None:
    c = caller(1.0)
    async with gateway(tmp_path) as gw:
        costs = [(await gw.chat(req(c))).cost_usd for _ in range(3)]
    async with gateway(tmp_path) as gw2:  # a new process's ledger: read from the request log
        r = await gw2.chat(req(c))
        p = period_of("daily", __import__("time").time())
        assert gw2.resilience.store.budget_spend("key:k1", p.id)[0] == pytest.approx(sum(costs) + r.cost_usd)
    # and a budget the logged spend already exhausts refuses after the restart
    async with gateway(tmp_path) as gw3:
        with pytest.raises(BudgetExceeded):
            await gw3.chat(req(caller(sum(costs) + r.cost_usd + 1e-9)))


def test_periods_are_calendar_utc() -> None:
    import datetime as dt

    ts = dt.datetime(2026, 12, 5, 17, 30, tzinfo=dt.UTC).timestamp()  # a Saturday
    d, w, m, t = (period_of(k, ts) for k in ("daily", "weekly", "monthly", "total"))
    assert d.id == "2026-12-05" and d.reset == dt.datetime(2026, 12, 6, tzinfo=dt.UTC).timestamp()
    assert w.id == "2026-W49" and w.start == dt.datetime(2026, 11, 30, tzinfo=dt.UTC).timestamp()
    assert m.id == "2026-12" and m.reset == dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp()
    assert t.reset is None


async def test_soft_limit_steers_budget_aware_routing_to_cheaper(tmp_path: Path) -> None:
    cfg = {"model_groups": {"g": {"deployments": ["frontier", "fast"], "strategy": "budget-aware",
                                  "options": {"start": 0.5}}}}
    c = Caller(key_id="k1", budgets=(Budget("key:k1", 1.0, "daily", soft_pct=50),))
    async with gateway(tmp_path, **cfg) as gw:
        assert gw.router.hooks.budget is not None
        p = period_of("daily", __import__("time").time())
        gw.resilience.store.budget_seed("key:k1", p.id, 0.95)  # 95 % spent
        r = await gw.chat(req(c, model="g"))
    assert r.deployment == "fast" and "budget" in (r.decision.reason or "")


async def test_a_budget_that_fits_the_exact_prompt_but_not_the_cheap_bound_admits(tmp_path: Path) -> None:
    """Admission prices the prompt by a cheap upper bound (its characters) and counts it exactly only
    when the bound would be refused: a budget with room for the exact worst case still admits."""
    from modelyard.tokens import count_message_tokens, token_bound

    prompt = "tell me about the sea and the ships that sail on it " * 40
    messages = [Message("user", prompt)]
    exact, bound = count_message_tokens(messages), token_bound(messages)
    assert bound > 3 * exact
    async with gateway(tmp_path) as gw:
        worst_in, worst_out, _ = gw.accounting.worst["frontier"]
        between = ((exact + bound) / 2 * worst_in + 40 * worst_out) / 1e6  # the exact fits, the bound does not
        c = caller(between)
        r = ChatRequest(model="frontier", messages=messages, max_tokens=40)
        r.caller = c
        resp = await gw.chat(r)
        assert resp.cost_usd > 0
        r2 = ChatRequest(model="frontier", messages=messages, max_tokens=40)
        r2.caller = caller(between / 10)  # not even the exact count fits: refused
        with pytest.raises(BudgetExceeded):
            await gw.chat(r2)
