"""Evaluate router scores on a strong/weak pair: the numbers behind `modelyard eval`.

`PairEval` holds per-prompt qualities (and costs, when the data or router file has them), computes
the router's metrics next to the reference policies — random (expected), oracle, always-strong,
always-weak — and quality/cost at fixed strong-call shares. metrics.py has the definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..routing.learned.data import DataError, Example, require_models
from .metrics import CurvePoint, RouterMetrics, at_share, evaluate_scores, oracle_scores, random_metrics

SHARES = tuple(k / 10 for k in range(11))


@dataclass
class PairEval:
    strong: str
    weak: str
    ids: list[str]
    q_strong: np.ndarray
    q_weak: np.ndarray
    c_strong: np.ndarray | None = None
    c_weak: np.ndarray | None = None
    results: dict[str, RouterMetrics] = field(default_factory=dict)

    @classmethod
    def from_examples(cls, examples: Sequence[Example], strong: str, weak: str, *, where: str = "data",
                      costs: dict[str, float] | None = None) -> PairEval:
        if strong == weak:
            raise DataError("--strong and --weak must be different models")
        require_models(examples, [strong, weak], where)
        qs = np.array([ex.scores[strong] for ex in examples], dtype=np.float64)
        qw = np.array([ex.scores[weak] for ex in examples], dtype=np.float64)
        cs = cw = None
        if all(strong in ex.cost and weak in ex.cost for ex in examples):
            cs = np.array([ex.cost[strong] for ex in examples])
            cw = np.array([ex.cost[weak] for ex in examples])
        elif costs and strong in costs and weak in costs:
            cs, cw = np.full(len(examples), costs[strong]), np.full(len(examples), costs[weak])
        return cls(strong, weak, [ex.id for ex in examples], qs, qw, cs, cw)

    @property
    def has_cost(self) -> bool:
        return self.c_strong is not None

    def add(self, name: str, scores: np.ndarray) -> RouterMetrics:
        m = evaluate_scores(name, scores, self.q_strong, self.q_weak, strong_cost=self.c_strong,
                            weak_cost=self.c_weak)
        self.results[name] = m
        return m

    def references(self) -> dict[str, RouterMetrics]:
        oracle = evaluate_scores("oracle", oracle_scores(self.q_strong, self.q_weak), self.q_strong, self.q_weak,
                                 strong_cost=self.c_strong, weak_cost=self.c_weak)
        rnd = random_metrics(self.q_strong, self.q_weak)
        if self.has_cost:
            cs, cw = float(np.mean(self.c_strong)), float(np.mean(self.c_weak))  # type: ignore[arg-type]
            for p in rnd.points:
                p.cost = cw + (cs - cw) * p.strong_share
        return {"random": rnd, "oracle": oracle}

    def always(self, which: str) -> CurvePoint:
        strong = which == "strong"
        q = self.q_strong if strong else self.q_weak
        c = self.c_strong if strong else self.c_weak
        return CurvePoint(float("nan"), 1.0 if strong else 0.0, float(q.mean()),
                          float(c.mean()) if c is not None else None)

    def at_shares(self, scores: np.ndarray, shares: Sequence[float] = SHARES) -> list[CurvePoint]:
        return [at_share(scores, s, self.q_strong, self.q_weak, self.c_strong, self.c_weak) for s in shares]

    def random_at(self, share: float) -> CurvePoint:
        qs, qw = float(self.q_strong.mean()), float(self.q_weak.mean())
        cost = None
        if self.has_cost:
            cs, cw = float(np.mean(self.c_strong)), float(np.mean(self.c_weak))  # type: ignore[arg-type]
            cost = cw + (cs - cw) * share
        return CurvePoint(float("nan"), share, qw + (qs - qw) * share, cost)
