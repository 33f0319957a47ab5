"""Race: the first success wins, the rest are cancelled — up to the upstream connection — and the
cancelled calls' billed prompt tokens count in the request's cost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from modekit import (
    FAKE_CATALOG,
    FakeUpstream,
    answer,
    gateway,
    logged,
    openai_dep,
    req,
    sim,
    stall,
    timed,
    upstream_fixture,
)

from modelyard.errors import Unavailable
from modelyard.tokens import count_message_tokens


@pytest.fixture
def real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite forces the sim to zero latency through the environment; races need the clock."""
    monkeypatch.delenv("MODELYARD_SIM_ZERO_LATENCY", raising=False)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async for fake in upstream_fixture():
        yield fake


async def test_fastest_sim_wins_and_the_others_are_cancelled_and_billed(tmp_path, real_time) -> None:
    gw = gateway(tmp_path, {
        "slow": timed("sim/frontier", 400, answers={"Hello": "slow answer"}),
        "quick": timed("sim/fast", 5, answers={"Hello": "quick answer"}),
        "medium": timed("sim/balanced", 300, answers={"Hello": "medium answer"}),
    })
    async with gw:
        r = await gw.chat(req("Hello there", mode="race", models=["slow", "quick", "medium"]), request_id="req_r1")
        log = await logged(gw, "req_r1")
    assert r.text == "quick answer" and r.deployment == "quick"
    meta = r.modelyard
    assert meta["winner"] == "quick" and sorted(meta["cancelled"]) == ["medium", "slow"]
    assert r.decision is not None and r.decision.strategy == "race"
    by_model = {c["model"]: c for c in meta["calls"]}
    assert by_model["slow"]["status"] == by_model["medium"]["status"] == "cancelled"
    # the cancelled calls are billed for their prompt, as the provider would
    prompt = count_message_tokens(req("Hello there").messages)
    assert by_model["slow"]["input_tokens"] == prompt and by_model["slow"]["output_tokens"] == 0
    assert by_model["slow"]["cost_usd"] == pytest.approx(gw.deployments["slow"].card.cost(
        type(r.usage)(input_tokens=prompt)))
    assert by_model["slow"]["cost_usd"] > 0
    # request total = sum of sub-calls = sum of the sub-call rows in the log; the parent row holds none
    sub = [row for rid, row in log.items() if rid != "req_r1"]
    assert len(sub) == 3
    assert r.cost_usd == pytest.approx(sum(c["cost_usd"] for c in meta["calls"]))
    assert r.cost_usd == pytest.approx(sum(row["cost_usd"] for row in sub))
    assert sorted(row["status"] for row in sub) == [200, 499, 499]
    parent = log["req_r1"]
    assert parent["cost_usd"] == 0 and parent["status"] == 200 and parent["deployment"] is None
    assert parent["route"]["strategy"] == "race"
    assert parent["route"]["features"]["total_cost_usd"] == pytest.approx(r.cost_usd)
    assert r.usage.input_tokens == sum(row["input_tokens"] for row in sub)


async def test_cancellation_reaches_the_upstream_connection(tmp_path, upstream: FakeUpstream) -> None:
    upstream.behaviours = {"up-quick": answer("first!", delay=0.05), "up-stall": stall(10)}
    gw = gateway(tmp_path, {"quick": openai_dep(upstream, "up-quick"), "stalled": openai_dep(upstream, "up-stall")},
                 catalog=FAKE_CATALOG)
    async with gw:
        r = await gw.chat(req("race me", mode="race", models=["stalled", "quick"]), request_id="req_r2")
        assert r.text == "first!" and r.modelyard["cancelled"] == ["stalled"]
        # the stalled upstream saw its client go away: generation stopped, nothing left hanging
        await asyncio.wait_for(upstream.gone("up-stall").wait(), 2)
        log = await logged(gw, "req_r2")
    stalled = next(row for row in log.values() if row["deployment"] == "stalled")
    assert stalled["status"] == 499 and stalled["input_tokens"] > 0
    # fake-card: $1 per 1M input tokens
    assert stalled["cost_usd"] == pytest.approx(stalled["input_tokens"] / 1e6)
    assert r.cost_usd == pytest.approx(sum(row["cost_usd"] for rid, row in log.items() if rid != "req_r2"))


async def test_streamed_race_streams_the_first_to_start_and_drops_the_rest(tmp_path, upstream: FakeUpstream) -> None:
    upstream.behaviours = {"up-quick": answer("streamed winner", delay=0.02), "up-stall": stall(10)}
    gw = gateway(tmp_path, {"quick": openai_dep(upstream, "up-quick"), "stalled": openai_dep(upstream, "up-stall")},
                 catalog=FAKE_CATALOG)
    async with gw:
        s = await gw.stream(req("race me", mode="race", models=["stalled", "quick"]), request_id="req_r3")
        assert s.deployment.name == "quick" and s.decision.strategy == "race"
        text = "".join([c.text or "" async for c in s])
        await asyncio.wait_for(upstream.gone("up-stall").wait(), 2)
        log = await logged(gw, "req_r3")
    assert text == "streamed winner"
    assert s.modelyard is not None and s.modelyard["winner"] == "quick" and s.modelyard["cancelled"] == ["stalled"]
    assert s.usage is not None and s.usage.output_tokens == 5
    assert s.cost_usd == pytest.approx(sum(row["cost_usd"] for rid, row in log.items() if rid != "req_r3"))
    assert log["req_r3"]["status"] == 200


async def test_failures_do_not_win_and_all_failing_is_an_error(tmp_path, real_time) -> None:
    gw = gateway(tmp_path, {
        "broken": sim("sim/fast", failure_rate=1.0),
        "steady": timed("sim/balanced", 30, answers={"q": "steady answer"}),
    }, resilience={"retry": {"max_attempts": 1}})  # no same-deployment retry: the failure is final
    async with gw:
        r = await gw.chat(req("q?", mode="race", models=["broken", "steady"]))
        assert r.text == "steady answer"
        assert r.modelyard["errors"]["broken"]["type"] == "upstream_unavailable"
        assert r.modelyard["cancelled"] == []
        with pytest.raises(Unavailable) as info:
            await gw.chat(req("q?", mode="race", models=["broken", "broken"]), request_id="req_r4")
        log = await logged(gw, "req_r4")
    assert "every candidate failed" in info.value.message and "broken#2" in info.value.message
    assert log["req_r4"]["status"] == 503


async def test_race_over_a_group_without_models(tmp_path) -> None:
    gw = gateway(tmp_path, {"a": sim("sim/fast"), "b": sim("sim/balanced")}, {"pair": {"deployments": ["a", "b"]}})
    async with gw:
        r = await gw.chat(req("hello", model="pair", mode="race"))
    assert r.modelyard["winner"] in ("a", "b") and len(r.modelyard["calls"]) == 2
