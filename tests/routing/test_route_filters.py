"""Candidate filters: each hard filter removes exactly what it should and says why; soft filters move
deployments to the back; NoCandidate (422) names which constraint removed which deployment."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routekit import FLEET, chain, decide, gateway, group, req, sim

from modelyard.catalog import builtin_cards
from modelyard.errors import NoCandidate
from modelyard.routing.candidates import CIRCUIT_OPEN, CandidateFilter, Filtered
from modelyard.routing.features import Features
from modelyard.types import ChatRequest, ImagePart, Message, TextPart, Tool


def verdicts(gw, r) -> dict[str, tuple[bool, str]]:
    _, d = decide(gw, r)
    return {c.deployment: (c.eligible, c.reason) for c in d.candidates}


def test_capabilities() -> None:
    gw = gateway(group("first-healthy"))
    img = ChatRequest(model="g", messages=[Message("user", [TextPart("what is it"), ImagePart("https://x/a.png")])])
    v = verdicts(gw, img)
    assert v["fast"] == (False, "lacks vision") and v["local"] == (False, "lacks vision")
    assert v["frontier"][0] and v["balanced"][0]
    assert chain(gw, img) == ["frontier", "balanced"]
    tools = req(tools=[Tool(name="f")], response_format={"type": "json_object"})
    assert chain(gw, tools) == ["frontier", "balanced", "fast"]
    assert verdicts(gw, tools)["local"] == (False, "lacks json, tools")


def test_context_window_and_max_output() -> None:
    gw = gateway(group("first-healthy"))
    long = req("word " * 9000)  # ~9k tokens: over sim/local's 8k window
    assert "local" not in chain(gw, long)
    assert verdicts(gw, long)["local"][1].startswith("context ") and "> window 8192" in verdicts(gw, long)["local"][1]
    big_out = req(max_tokens=10_000)
    v = verdicts(gw, big_out)
    assert v["fast"] == (False, "max_tokens 10000 > max output 8192") and not v["local"][0]
    assert chain(gw, big_out) == ["frontier", "balanced"]


def test_tags_min_quality_cost_and_latency() -> None:
    deps = {**FLEET, "frontier": sim("sim/frontier", tags=["eu", "gdpr"]), "local": sim("sim/local", tags=["eu"])}
    gw = gateway(group("first-healthy"), deps)
    assert chain(gw, req(metadata={"tags": ["eu"]})) == ["frontier", "local"]
    assert verdicts(gw, req(metadata={"tags": "eu,gdpr"}))["local"] == (False, "missing tags gdpr")
    # quality priors for math: frontier .90, balanced .75, fast .55, local .55
    assert chain(gw, req("x", metadata={"task": "math", "min_quality": 0.7})) == ["frontier", "balanced"]
    assert "< min 0.70" in verdicts(gw, req("x", metadata={"task": "math", "min_quality": 0.7}))["fast"][1]
    cheap = req("hello", metadata={"max_cost_usd": 0.0002})
    assert "frontier" not in chain(gw, cheap) and "local" in chain(gw, cheap)
    assert verdicts(gw, cheap)["frontier"][1].startswith("estimated cost $")
    quick = req("hello", metadata={"latency_budget_ms": 700})
    assert chain(gw, quick) == ["fast"]
    assert "budget 700 ms" in verdicts(gw, quick)["frontier"][1]


def test_group_constraints_from_config_and_requests_only_tighten() -> None:
    gw = gateway(group("first-healthy", {"max_cost_usd": 0.0002, "tags": []}))
    assert "frontier" not in chain(gw)
    assert "frontier" not in chain(gw, req(metadata={"max_cost_usd": 1.0}))  # the tighter limit holds


def test_budget_hook_removes_what_the_remaining_budget_cannot_pay() -> None:
    gw = gateway(group("first-healthy"))
    gw.router.hooks.budget = lambda f: (9.9999, 10.0) if f.team == "growth" else None
    assert chain(gw, req(metadata={"team": "growth"})) == ["fast", "local"]
    assert chain(gw, req()) == list(FLEET)
    assert "remaining budget" in verdicts(gw, req(metadata={"team": "growth"}))["balanced"][1]


def test_unhealthy_and_busy_deployments_go_last_but_stay_in_the_chain() -> None:
    deps = {**FLEET, "balanced": sim("sim/balanced", max_concurrency=2)}
    gw = gateway(group("first-healthy"), deps)
    for _ in range(10):
        gw.health.failed("frontier")
    gw.health.started("balanced")
    gw.health.started("balanced")
    c, d = decide(gw)
    assert [x.name for x in c] == ["fast", "local", "frontier", "balanced"]
    v = {x.deployment: x for x in d.candidates}
    assert not v["frontier"].eligible and "circuit open" in v["frontier"].reason
    assert not v["balanced"].eligible and v["balanced"].reason == "at max concurrency (2 in flight)"
    assert d.deployment == "fast"


def test_everything_unhealthy_is_still_tried() -> None:
    gw = gateway(group("first-healthy", deps=["fast", "local"]))
    for name in ("fast", "local"):
        for _ in range(10):
            gw.health.failed(name)
    c, d = decide(gw)
    assert [x.name for x in c] == ["fast", "local"] and d.deployment == "fast"
    assert "ranked anyway" in d.candidates[0].reason


def test_rpm_limit_is_a_soft_filter_on_what_was_sent() -> None:
    """Routing reads the enforced windows (accounting/limits.py): planning alone takes nothing,
    requests sent to the deployment do."""
    import time

    deps = {**FLEET, "fast": sim("sim/fast", rpm=2)}
    gw = gateway(group("first-healthy", deps=["fast", "local"]), deps)
    picks = []
    for _ in range(3):
        picks.append(chain(gw)[0])
        gw.accounting.limits.take_chain([gw.deployments[picks[-1]]], 10, time.time())
    assert picks == ["fast", "fast", "local"]
    _, d = decide(gw)
    assert d.candidates[0].reason == "rpm limit reached (2/2 in the last minute)"


def test_no_candidate_names_each_constraint() -> None:
    gw = gateway(group("score"))
    img = ChatRequest(model="g", messages=[Message("user", [TextPart("x"), ImagePart("https://x/a.png")])],
                      metadata={"max_cost_usd": 0.0000001})
    with pytest.raises(NoCandidate) as e:
        decide(gw, img)
    msg = e.value.message
    assert e.value.status == 422
    assert "no deployment of 'g' can serve this request" in msg
    assert "fast: lacks vision" in msg and "local: lacks vision" in msg
    assert "frontier: estimated cost $" in msg and "> max $0.000000" in msg


def test_fallbacks_are_filtered_too_and_can_rescue_the_request() -> None:
    gw = gateway({"g": {"deployments": ["local"], "fallbacks": ["h"]}, "h": {"deployments": ["fast", "frontier"]}})
    img = ChatRequest(model="g", messages=[Message("user", [TextPart("x"), ImagePart("https://x/a.png")])])
    c, d = decide(gw, img)
    assert [x.name for x in c] == ["frontier"] and d.deployment == "frontier"
    with pytest.raises(NoCandidate) as e:
        decide(gw, ChatRequest(model="g", messages=img.messages, metadata={"tags": ["none"]}))
    assert "fast (fallback): lacks vision; frontier (fallback): missing tags none" in e.value.message


def test_light_groups_skip_the_classifier_unless_something_needs_the_task() -> None:
    gw = gateway(group("first-healthy"))
    assert gw.router.plans["g"].light
    _, d = decide(gw, req("Write a Python function that sorts a list."))
    assert d.features["task"] is None and d.features["complexity"] is None and d.features["input_tokens"] > 0
    _, d = decide(gw, req("Write a Python function that sorts a list.", metadata={"min_quality": 0.1}))
    assert d.features["task"] == "code_generation"  # a hint that needs the task gets the full analysis
    explained = gw.router.explain(gw.resolve("g"), req("Write a Python function that sorts a list."))
    assert explained["features"]["task"] == "code_generation"  # explanations always analyse fully
    assert not gateway(group("first-healthy", {"min_quality": 0.5})).router.plans["g"].light
    assert not gateway(group("score")).router.plans["g"].light


# --- the shortcuts: worked-out capability sets, breakers asked only when listed as not closed ------

REAL_FLEET = {f"d{i}": sim(c) for i, c in enumerate(c for c in builtin_cards() if not c.startswith("sim/"))}


def _reference(filt: CandidateFilter, f: Features, max_tokens: int | None, now: float) -> Filtered:
    """The filters as defined: every deployment through the hard filters, then each asked for its
    circuit, concurrency and headroom."""
    rejected: dict[str, str] = {}
    ok = filt.hard(filt.deployments, f, max_tokens, rejected)
    eligible, deferred = [], []
    for d in ok:
        if filt.health is not None and not filt.health.healthy(d.name, now):
            deferred.append(d)
            rejected[d.name] = CIRCUIT_OPEN
        else:
            eligible.append(d)
    return Filtered(eligible, deferred, rejected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(caps=st.frozensets(st.sampled_from(["vision", "tools", "json", "streaming"])),
       context=st.sampled_from([10, 5_000, 100_000, 150_000, 300_000, 2_000_000]),
       max_tokens=st.none() | st.sampled_from([100, 10_000, 40_000]),
       hints=st.sampled_from([{}, {"max_cost_usd": 0.001}, {"tags": frozenset({"eu"})}, {"min_quality": 0.8}]),
       broken=st.lists(st.sampled_from(sorted(REAL_FLEET)), max_size=4), later=st.booleans())
def test_filters_decide_what_asking_every_deployment_decides(caps: frozenset[str], context: int,
                                                             max_tokens: int | None, hints: dict, broken: list[str],
                                                             later: bool) -> None:
    gw = gateway(group("first-healthy", deps=list(REAL_FLEET)), REAL_FLEET)
    filt = gw.router.plans["g"].filter
    for name in broken:
        for _ in range(5):
            gw.health.failed(name)
    now = time.monotonic() + (1e6 if later else 0.0)  # later: the cool-downs are over, probes let through
    f = Features(capabilities=caps, context_tokens=context, **hints)
    for _ in range(2):  # the second time from the worked-out capability set
        got, want = filt.run(f, max_tokens, now), _reference(filt, f, max_tokens, now)
        assert (got.eligible, got.deferred) == (want.eligible, want.deferred)
        assert list(got.rejected.items()) == list(want.rejected.items())
    if filt.unconstrained(caps, context, max_tokens, f):  # (a sufficient test: then no hard filter removes one)
        assert set(want.rejected) <= set(broken)


def test_a_worked_out_capability_set_is_not_changed_by_the_requests_that_use_it() -> None:
    gw = gateway(group("first-healthy"))
    filt = gw.router.plans["g"].filter
    vision = Features(capabilities=frozenset({"vision"}), context_tokens=10)
    first = filt.run(vision)
    first.rejected["x"] = "changed by a caller"
    for _ in range(10):
        gw.health.failed("frontier")
    again = filt.run(vision)
    assert "x" not in again.rejected and filt.offer(frozenset({"vision"})).rejected == {
        n: why for n, why in again.rejected.items() if why.startswith("lacks")}
