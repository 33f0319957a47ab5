"""Each built-in strategy on the sim fleet (frontier > balanced > fast > local in price and quality;
fast has the lowest latency priors), plus rules conditions and composition."""

from __future__ import annotations

import collections

import pytest
from routekit import FLEET, chain, decide, gateway, group, req, sim

from modelyard.routing import Router
from modelyard.routing.conditions import compile_condition
from modelyard.routing.features import Features
from modelyard.routing.strategies import StrategyConfigError


def test_first_healthy_keeps_group_order() -> None:
    gw = gateway(group("first-healthy", deps=["local", "frontier", "fast"]))
    c, d = decide(gw)
    assert [x.name for x in c] == ["local", "frontier", "fast"]
    assert d.strategy == "first-healthy" and [s.score for s in d.candidates] == sorted(
        [s.score for s in d.candidates], reverse=True)


def test_weighted_deterministic_mode_orders_by_weight() -> None:
    deps = {"a": sim("sim/fast", weight=1), "b": sim("sim/fast", weight=5), "c": sim("sim/fast", weight=2)}
    gw = gateway({"g": {"deployments": ["a", "b", "c"], "strategy": "weighted"}}, deps)
    det = Router(gw.health, config=gw.config, deployments=gw.deployments, deterministic=True)
    assert [[x.name for x in det.plan(gw.resolve("g"), req())[0]] for _ in range(3)] == [["b", "c", "a"]] * 3
    firsts = collections.Counter(chain(gw)[0] for _ in range(2000))
    assert 0.55 < firsts["b"] / 2000 < 0.70


def test_round_robin_rotates() -> None:
    gw = gateway(group("round-robin", deps=["fast", "local", "balanced"]))
    assert [chain(gw)[0] for _ in range(4)] == ["fast", "local", "balanced", "fast"]


def test_score_presets_and_per_request_optimize_for() -> None:
    gw = gateway(group("score"))
    assert chain(gw, req(metadata={"optimize_for": "cost"}))[0] in ("local", "fast")
    assert chain(gw, req(metadata={"optimize_for": "latency"}))[0] == "fast"
    assert chain(gw, req("Prove that sqrt(2) is irrational.", metadata={"optimize_for": "quality"}))[0] == "frontier"
    quality_first = gateway(group("score", {"weights": {"quality": 1}}))
    assert chain(quality_first, req("Prove that sqrt(2) is irrational."))[:2] == ["frontier", "balanced"]


def test_score_latency_axis_follows_observed_ttft() -> None:
    # the priors make `fast` the fastest; once streams have been timed, what was seen counts
    gw = gateway(group("score", deps=["fast", "balanced"]))
    latency = req(metadata={"optimize_for": "latency"})
    assert gw.health.ttft_observed == 0 and chain(gw, latency)[0] == "fast"
    for _ in range(20):
        gw.health.ok("balanced", latency_ms=90, ttft_ms=5)
        gw.health.ok("fast", latency_ms=4000, ttft_ms=3000)
    assert gw.health.ttft_observed == 2 and chain(gw, latency)[0] == "balanced"


def test_score_leans_on_quality_as_complexity_rises() -> None:
    gw = gateway(group("score", {"optimize_for": "cost", "complexity_gain": 1.0}, deps=["frontier", "balanced",
                                                                                        "fast"]))
    easy = req("What is the capital of Peru?")
    hard = req("Design, step by step, a lock-free multi-producer queue in C++. Analyze the memory ordering of "
               "each atomic, prove it is linearizable, compare it with a mutex-based design, and explain the "
               "trade-offs. It must handle ABA and must not allocate on the hot path. Then derive its complexity.")
    _, de = decide(gw, easy)
    _, dh = decide(gw, hard)
    assert de.features["complexity"] < 0.3 < 0.6 < dh.features["complexity"]
    score = {c.deployment: c.score for c in dh.candidates}
    score_easy = {c.deployment: c.score for c in de.candidates}
    assert score["frontier"] - score["fast"] > score_easy["frontier"] - score_easy["fast"]
    assert de.deployment == "fast"


def test_score_quality_overrides_from_config() -> None:
    gw = gateway(group("score", {"weights": {"quality": 1}, "quality": {"local": {"chat": 0.99}}}))
    assert chain(gw, req("hey, how are you?"))[0] == "local"


def test_score_random_tie_break_spreads_identical_deployments() -> None:
    deps = {f"r{i}": sim("sim/fast") for i in range(3)}
    gw = gateway({"g": {"deployments": list(deps), "strategy": "score", "options": {"tie_break": "random"}}}, deps)
    assert set(collections.Counter(chain(gw)[0] for _ in range(300))) == set(deps)
    ordered = gateway({"g": {"deployments": list(deps), "strategy": "score"}}, deps)
    assert {chain(ordered)[0] for _ in range(50)} == {"r0"}


def test_cheapest_and_min_quality() -> None:
    gw = gateway(group("cheapest"))
    assert chain(gw) == ["local", "fast", "balanced", "frontier"]
    good_enough = gateway(group("cheapest", {"min_quality": 0.7}))
    assert chain(good_enough, req("Write a Python function to sort a list."))[0] == "balanced"


def test_fastest_uses_observed_ttft_then_priors() -> None:
    gw = gateway(group("fastest"))
    assert chain(gw)[0] == "fast"
    for _ in range(20):
        gw.health.ok("frontier", latency_ms=80, ttft_ms=5)
        gw.health.ok("fast", latency_ms=3000, ttft_ms=2500)
    c, d = decide(gw)
    assert c[0].name != "fast" and c[-1].name == "fast"
    assert {x.reason for x in d.candidates} == {"lowest expected latency"}  # rank keeps reasons cheap ...
    explained = gw.router.explain(gw.resolve("g"), req())  # ... explain adds the figures
    reasons = {x["deployment"]: x["reason"] for x in explained["candidates"]}
    assert "observed TTFT EWMA" in reasons["frontier"] and "card priors" in reasons["local"]


def test_least_busy() -> None:
    gw = gateway(group("least-busy", deps=["fast", "local", "balanced"]))
    for _ in range(3):
        gw.health.started("fast")
    gw.health.started("local")
    assert chain(gw) == ["balanced", "local", "fast"]


def test_usage_prefers_headroom_and_charges_picks() -> None:
    deps = {"a": sim("sim/fast", rpm=100), "b": sim("sim/fast", rpm=10), "c": sim("sim/fast", rpm=10)}
    gw = gateway({"g": {"deployments": ["b", "c", "a"], "strategy": "usage"}}, deps)
    firsts = [chain(gw)[0] for _ in range(40)]
    assert firsts[0] == "a" and firsts.count("a") > firsts.count("b") + firsts.count("c")
    assert {"b", "c"} <= set(firsts)  # a's headroom drops below theirs as it is charged


def test_tier_matrix() -> None:
    gw = gateway(group("tier"))  # classes by card quality: frontier | balanced → standard | fast, local → economy
    assert chain(gw, req(metadata={"tier": "free"}))[0] in ("fast", "local")
    assert chain(gw, req(metadata={"tier": "pro", "task_value": "medium"}))[0] == "balanced"
    c, d = decide(gw, req(metadata={"tier": "enterprise", "task_value": "high"}))
    assert c[0].name == "frontier" and d.rule == "enterprise/high -> frontier"
    assert chain(gw, req(metadata={"tier": "unknown-tier"}))[0] in ("fast", "local")  # default tier: free
    custom = gateway(group("tier", {"classes": {"gold": ["balanced"], "tin": ["local"]},
                                    "matrix": {"free": {"*": "tin"}, "vip": {"*": "gold"}}}))
    assert chain(custom, req(metadata={"tier": "vip"}))[0] == "balanced"


def test_budget_aware_shifts_to_cheaper_models_near_the_budget() -> None:
    gw = gateway(group("budget-aware", {"optimize_for": "quality", "start": 0.5}))
    spent = {"growth": 0.0}
    gw.router.hooks.budget = lambda f: (spent[f.team], 100.0) if f.team in spent else None
    r = req("Explain the trade-offs between B-trees and LSM trees.", metadata={"team": "growth"})
    assert chain(gw, r)[0] == "frontier"
    spent["growth"] = 75.0
    mid = chain(gw, r)[0]
    spent["growth"] = 99.99
    c, d = decide(gw, r)
    assert c[0].name in ("local", "fast") and mid != "frontier"
    assert "100% of budget spent" in d.reason


def test_rules_first_match_default_and_filtered_targets() -> None:
    opts = {"rules": [{"name": "pics", "when": {"capabilities": "vision"}, "to": "local"},
                      {"name": "math", "when": {"task": "math"}, "to": ["frontier", "balanced"]},
                      {"name": "vip", "when": {"any": [{"tier": "vip"}, {"metadata.project": "apollo"}]},
                       "to": "frontier"}],
            "default": "fast", "then": "cheapest"}
    gw = gateway(group("rules", opts))
    c, d = decide(gw, req("hello"))
    assert c[0].name == "fast" and d.rule == "default"
    c, d = decide(gw, req("Solve 3x + 1 = 10."))
    assert [x.name for x in c][:2] == ["balanced", "frontier"] and d.rule == "math"  # cheapest within the target
    assert chain(gw, req(metadata={"project": "apollo"}))[0] == "frontier"
    from modelyard.types import ChatRequest, ImagePart, Message, TextPart

    img = ChatRequest(model="g", messages=[Message("user", [TextPart("Solve 2x = 4"), ImagePart("https://x/y.png")])])
    c, d = decide(gw, img)  # 'pics' targets local, which lacks vision: the next matching rule decides
    assert d.rule == "math" and c[0].name == "balanced" and "local" not in [x.name for x in c]


def test_rules_route_header_and_decision(tmp_path) -> None:
    gw = gateway(group("rules", {"rules": [{"name": "all", "when": {}, "to": "fast"}]}))
    _, d = decide(gw)
    assert d.route_header() == "rules; rule=all" and d.to_dict()["rule"] == "all"


def feats(**kw) -> Features:
    return Features(**kw)


@pytest.mark.parametrize(("when", "true", "false"), [
    ({"complexity": {"gte": 0.5, "lt": 0.8}}, feats(complexity=0.6), feats(complexity=0.8)),
    ({"hour": {"between": [22, 6]}}, feats(hour=23), feats(hour=12)),
    ({"hour": {"between": [22, 6]}}, feats(hour=3), feats(hour=6)),
    ({"weekday": ["sat", "sun"]}, feats(weekday=6), feats(weekday=0)),
    ({"task": ["math", "reasoning"]}, feats(task="math"), feats(task="chat")),
    ({"tags": {"contains_any": ["a", "b"]}}, feats(tags=frozenset({"b"})), feats(tags=frozenset({"c"}))),
    ({"capabilities": ["vision", "tools"]}, feats(capabilities=frozenset({"vision", "tools", "json"})),
     feats(capabilities=frozenset({"vision"}))),
    ({"not": {"language": "en"}}, feats(language="fr"), feats(language="en")),
    ({"tier": {"exists": False}}, feats(), feats(tier="pro")),
    ({"user": {"matches": "^bot-"}}, feats(user="bot-7"), feats(user="alice")),
    ({"metadata.priority": {"gte": 5}}, feats(extra={"priority": "7"}), feats(extra={"priority": 2})),
    ({"all": [{"task_value": "high"}, {"input_tokens": {"lt": 1000}}]}, feats(task_value="high", input_tokens=5),
     feats(task_value="high", input_tokens=5000)),
])
def test_conditions(when: dict, true: Features, false: Features) -> None:
    cond = compile_condition(when, ("when",))
    assert cond(true) and not cond(false)


@pytest.mark.parametrize(("when", "loc", "msg"), [
    ({"complexty": {"gt": 0.5}}, ("when", "complexty"), "did you mean 'complexity'"),
    ({"complexity": {"bigger": 0.5}}, ("when", "complexity", "bigger"), "unknown operator 'bigger'"),
    ({"complexity": {"gt": "high"}}, ("when", "complexity", "gt"), "must be a number"),
    ({"task": "poetry"}, ("when", "task"), "unknown value 'poetry'"),
    ({"capabilities": "telepathy"}, ("when", "capabilities"), "unknown value 'telepathy'"),
    ({"hour": {"between": [1]}}, ("when", "hour", "between"), "takes [low, high]"),
    ({"any": []}, ("when", "any"), "non-empty list"),
    ({"user": {"matches": "("}}, ("when", "user", "matches"), "invalid regular expression"),
])
def test_bad_conditions_point_at_the_key(when: dict, loc: tuple, msg: str) -> None:
    with pytest.raises(StrategyConfigError) as e:
        compile_condition(when, ("when",))
    assert e.value.loc == loc and msg in e.value.msg


def test_every_builtin_is_registered() -> None:
    from modelyard.routing.strategies import known_strategies

    assert {"rules", "score", "cheapest", "fastest", "least-busy", "usage", "weighted", "round-robin", "tier",
            "budget-aware", "first-healthy"} <= set(known_strategies())
    assert set(FLEET) == {"frontier", "balanced", "fast", "local"}


def test_rules_and_tier_run_the_classifier_only_when_a_condition_or_the_inner_strategy_reads_the_task() -> None:
    hints = {"rules": [{"name": "pro", "when": {"any": [{"tier": "pro"}, {"not": {"capabilities": "vision"}}],
                                                "input_tokens": {"lt": 5000}}, "to": "frontier"}],
             "then": "first-healthy"}
    gw = gateway(group("rules", hints))
    assert gw.router.plans["g"].light
    c, d = decide(gw, req("Write a Python function that sorts a list.", metadata={"tier": "pro"}))
    assert c[0].name == "frontier" and d.rule == "pro" and d.features["task"] is None
    for reads in ({"complexity": {"gte": 0.5}}, {"all": [{"language": "fr"}]}, {"output_tokens": {"gt": 9}}):
        rules = {**hints, "rules": [{"when": reads, "to": "fast"}]}
        assert not gateway(group("rules", rules)).router.plans["g"].light, reads
    assert not gateway(group("rules", {**hints, "then": "score"})).router.plans["g"].light
    assert gateway(group("tier", {"then": "first-healthy"})).router.plans["g"].light
    assert not gateway(group("tier")).router.plans["g"].light  # then: score reads task and complexity


def test_fields_read_by_a_condition() -> None:
    from modelyard.routing.conditions import fields_read

    when = {"task": "math", "any": [{"tier": "pro"}, {"not": {"metadata.project": "x"}}], "hour": {"between": [1, 5]}}
    assert fields_read(when) == {"task", "tier", "extra", "hour"}
    assert fields_read({}) == frozenset()
