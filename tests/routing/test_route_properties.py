"""Property tests: over random fleets, requests and health, every strategy returns a permutation of
its candidates, and the router never puts a hard-filtered deployment into the chain."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.catalog import ModelCard
from modelyard.config import SimSettings
from modelyard.deployment import Deployment
from modelyard.resilience.health import HealthTracker
from modelyard.routing import Route, Router
from modelyard.routing.features import TASKS, Features
from modelyard.routing.hooks import RoutingHooks
from modelyard.routing.strategies import StrategyContext, lookup
from modelyard.types import ChatRequest, ImagePart, Message, TextPart, Tool

NAMES = [f"d{i}" for i in range(8)]
CAPS = ["vision", "tools", "json"]

card = st.builds(
    lambda inp, out, ctx, caps, q, ttft, tps: ModelCard(
        name="c", provider="sim", input_per_m=inp, output_per_m=out, context_window=ctx, max_output=4096,
        capabilities=frozenset(["streaming", *caps]), quality={"general": q}, ttft_ms=ttft, tokens_per_s=tps),
    st.floats(0, 20), st.floats(0, 80), st.sampled_from([4096, 8192, 32768, 128000]),
    st.lists(st.sampled_from(CAPS), unique=True), st.floats(0.3, 0.99), st.floats(50, 3000), st.floats(5, 500))


@st.composite
def fleets(draw: st.DrawFn) -> list[Deployment]:
    n = draw(st.integers(1, 8))
    return [Deployment(name=NAMES[i], provider="sim", model="m", card=draw(card), weight=draw(st.floats(0, 5)),
                       rpm=draw(st.none() | st.integers(1, 5)), max_concurrency=draw(st.none() | st.integers(1, 3)),
                       tags=tuple(draw(st.lists(st.sampled_from(["eu", "us"]), unique=True))), sim=SimSettings())
            for i in range(n)]


features = st.builds(
    Features, task=st.sampled_from(TASKS), complexity=st.floats(0, 1), input_tokens=st.integers(1, 50_000),
    output_tokens=st.integers(1, 4000), context_tokens=st.integers(1, 60_000),
    capabilities=st.frozensets(st.sampled_from(CAPS)), tier=st.sampled_from([None, "free", "pro", "enterprise"]),
    task_value=st.sampled_from([None, "low", "medium", "high"]),
    optimize_for=st.sampled_from([None, "cost", "latency", "quality", "balanced"]), hour=st.integers(0, 23))

STRATEGY_OPTIONS = {
    "first-healthy": {}, "weighted": {}, "round-robin": {}, "score": {"tie_break": "random"}, "cheapest": {},
    "fastest": {}, "least-busy": {}, "usage": {}, "tier": {}, "budget-aware": {"start": 0.2},
    "rules": {"rules": [{"when": {"complexity": {"gte": 0.5}}, "to": "d0"},
                        {"when": {"task": ["math", "chat"], "hour": {"between": [20, 4]}}, "to": ["d0", "d1"]}],
              "then": "score"},
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets(), f=features, data=st.data())
def test_every_strategy_returns_a_permutation_of_its_candidates(fleet, f, data) -> None:
    health = HealthTracker([d.name for d in fleet])
    deps = {d.name: d for d in fleet}
    candidates = data.draw(st.lists(st.sampled_from(fleet), unique_by=lambda d: d.name))
    for name, options in STRATEGY_OPTIONS.items():
        if name == "rules" and "d0" not in deps:
            continue
        if name == "rules" and "d1" not in deps:
            options = {**options, "rules": options["rules"][:1]}
        ctx = StrategyContext(group="g", deployments=deps, groups={"g": list(deps)}, health=health,
                              hooks=RoutingHooks(budget=lambda f: (50.0, 100.0)))
        strategy = lookup(name)(options, ctx)
        ranked = strategy.rank(ChatRequest(model="g", messages=[]), f, candidates)
        assert sorted(s.deployment for s in ranked) == sorted(d.name for d in candidates), name
        assert all(s.eligible for s in ranked), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets(), strategy=st.sampled_from(sorted(STRATEGY_OPTIONS)), failures=st.lists(st.integers(0, 7)),
       text=st.text(max_size=300), image=st.booleans(), tools=st.booleans(),
       tags=st.lists(st.sampled_from(["eu", "us"]), unique=True), max_cost=st.none() | st.floats(0, 0.01))
def test_the_chain_never_contains_a_hard_filtered_deployment(fleet, strategy, failures, text, image, tools, tags,
                                                            max_cost) -> None:
    if strategy == "rules":
        strategy = "score"  # rules needs named targets; its ranking is covered above
    health = HealthTracker([d.name for d in fleet])
    for i in failures:
        if i < len(fleet):
            health.failed(fleet[i].name)
    router = Router(health, deployments={d.name: d for d in fleet}, seed=1)
    route = Route(name="g", deployments=fleet, strategy=strategy, is_group=True)
    content = [TextPart(text), ImagePart("https://x/i.png")] if image else text
    meta = {"tags": tags, **({"max_cost_usd": max_cost} if max_cost is not None else {})}
    req = ChatRequest(model="g", messages=[Message("user", content)], tools=[Tool(name="t")] if tools else None,
                      metadata=meta)
    chain, decision, rejected = router.decide(route, req)
    verdict = {c.deployment: c for c in decision.candidates}
    assert [c.deployment for c in decision.candidates] == [d.name for d in fleet]
    for d in fleet:
        hard = ("vision" if image else None) in (None, *d.card.capabilities) and \
               ("tools" if tools else None) in (None, *d.card.capabilities) and set(tags) <= set(d.tags)
        if not hard:
            assert d not in chain and not verdict[d.name].eligible
    assert len({d.name for d in chain}) == len(chain)  # no deployment twice
    for d in chain:
        assert d.name not in rejected or rejected[d.name].startswith(("cooling", "at max", "rpm", "tpm"))
    if chain:
        assert decision.deployment == chain[0].name
