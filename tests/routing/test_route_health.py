"""`healthiest` moves traffic away from a deployment whose calls start failing, before its breaker
opens, and keeps sending it a trickle so a recovery shows. The sim fleet's failure rates are the
upstream; the breaker is set so it never opens at these rates, so what moves traffic is the strategy."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from routekit import gateway, req, sim

from modelyard.errors import ConfigError, ModelyardError
from modelyard.gateway import Gateway
from modelyard.loader import parse_config

DEPS = {"good": sim("sim/balanced", sim={"zero_latency": True}),
        "flaky": sim("sim/balanced", sim={"zero_latency": True, "failure_rate": 0.3})}


def first_picks(strategy: str, n: int = 600) -> tuple[Counter[str], str]:
    cfg = parse_config({"deployments": DEPS, "model_groups": {"g": {"deployments": ["good", "flaky"],
                                                                     "strategy": strategy}},
                        "resilience": {"breaker": {"consecutive_failures": 1000, "failure_rate": 1.0}}}, "t.yaml")
    gw = Gateway(cfg, source="t.yaml", request_log=False)
    picks: Counter[str] = Counter()

    async def run() -> str:
        async with gw:
            for i in range(n):
                try:
                    resp = await gw.chat(req(f"hello {i}"))
                except ModelyardError:
                    continue
                if i >= n // 4:  # after the first calls have shown who is failing
                    d = resp.decision
                    picks[d.fallbacks[0] if d.fallbacks else resp.deployment] += 1
            return gw.health.by_name["flaky"].circuit

    return picks, asyncio.run(run())


def test_traffic_leaves_a_deployment_that_fails_often_before_its_breaker_opens() -> None:
    picks, circuit = first_picks("healthiest")
    share = picks["flaky"] / sum(picks.values())
    assert circuit == "closed"
    assert 0.01 < share < 0.35, picks  # weights ∝ success², with a floor so recovery can show
    even, _ = first_picks("weighted")  # the same fleet without health weighting: about half each
    assert even["flaky"] / sum(even.values()) > 0.4, even


def test_healthiest_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="power"):
        gateway({"g": {"deployments": ["good", "flaky"], "strategy": "healthiest", "options": {"power": -1}}},
                DEPS)
