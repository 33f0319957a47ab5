"""`score` with numpy (strategies/score_columns.py) against its plain loop: the same doubles, the same order."""

from __future__ import annotations

import random

import pytest
from routekit import gateway, req, sim

from modelyard.catalog import builtin_cards
from modelyard.routing.features import TASKS, Features
from modelyard.routing.ranking import Front, front_first
from modelyard.routing.strategies import score

pytest.importorskip("numpy")


def _fleet(n: int) -> dict[str, dict[str, str]]:
    cards = sorted(c for c, card in builtin_cards().items() if "streaming" in card.capabilities)
    return {f"d{i:02d}": sim(cards[i % len(cards)]) for i in range(n)}


@pytest.mark.parametrize("observed", [0, 3, 1])  # time to first token observed on none, every third, every one
def test_numpy_scores_are_the_loops_doubles(observed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(score, "NUMPY_FROM", 1)  # numpy for every candidate set, one deployment too
    deps = _fleet(40)
    gw = gateway({"g": {"deployments": list(deps), "strategy": "score"}}, deployments=deps)
    strategy = gw.router.plans["g"].strategy
    assert strategy.columns is not None
    group = gw.router.plans["g"].deployments
    rnd = random.Random(7)
    if observed:  # the others on their prior
        for d in group[::observed]:
            gw.health.ok(d.name, latency_ms=rnd.uniform(200, 4000), ttft_ms=rnd.uniform(50, 2000))
    r = req()
    for _ in range(300):
        cands = [d for d in group if rnd.random() < 0.8] or group[:1]
        f = Features(task=rnd.choice(TASKS), complexity=rnd.random(), input_tokens=rnd.randint(1, 30_000),
                     output_tokens=rnd.choice([0, 1, rnd.randint(1, 4000)]),
                     optimize_for=rnd.choice([None, "cost", "latency", "quality"]))
        strategy.tie_break = rnd.choice(["order", "random"])  # random: the same draws from the same seed
        seed = rnd.random()
        strategy.rng = random.Random(seed)
        fast = strategy.order(r, f, cands)
        columns, strategy.columns, strategy.rng = strategy.columns, None, random.Random(seed)
        try:
            plain = strategy.order(r, f, cands)
        finally:
            strategy.columns = columns
        assert fast.order == plain.order
        assert [repr(float(x)) for x in fast.scores] == [repr(x) for x in plain.scores]
        assert [(s.deployment, s.score) for s in fast.scored()] == [(s.deployment, s.score) for s in plain.scored()]


@pytest.mark.parametrize("tie_break", ["order", "random"])
def test_numpy_front_first_is_the_loops_order_with_the_front_moved_ahead(tie_break: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`order_front` (rules and tier putting a target first): with numpy one lexsort, in the loop a
    partition of the order; the same positions either way, each part in the score order."""
    monkeypatch.setattr(score, "NUMPY_FROM", 1)
    deps = _fleet(40)
    gw = gateway({"g": {"deployments": list(deps), "strategy": "score"}}, deployments=deps)
    strategy = gw.router.plans["g"].strategy
    group = gw.router.plans["g"].deployments
    strategy.tie_break = tie_break
    rnd = random.Random(11)
    r = req()
    for _ in range(200):
        cands = [d for d in group if rnd.random() < 0.8] or group[:1]
        front = Front([rnd.random() < rnd.choice([0.0, 0.1, 0.5, 1.0]) for _ in cands])
        f = Features(task=rnd.choice(TASKS), complexity=rnd.random(), input_tokens=rnd.randint(1, 30_000),
                     output_tokens=rnd.choice([0, 1, rnd.randint(1, 4000)]))
        seed = rnd.random()
        strategy.rng = random.Random(seed)
        fast = strategy.order_front(r, f, cands, front)
        columns, strategy.columns, strategy.rng = strategy.columns, None, random.Random(seed)
        try:
            plain = strategy.order(r, f, cands)
        finally:
            strategy.columns = columns
        assert fast.order == front_first(plain.order, front.flags)
        assert fast.deployments == [cands[i] for i in fast.order]
        assert [(s.deployment, repr(s.score)) for s in fast.scored()] == \
            [(cands[i].name, repr(plain.score(i))) for i in fast.order]
