"""`score`'s per-request arithmetic as a few numpy operations over all candidates (when numpy is
installed; score.py runs the same sums as a Python loop otherwise).

Why: on 50 candidates the loop is ~11 float operations each, ~550 interpreted operations per
decision and ~40 % of a `score` decision's instructions; one numpy operation does a whole row. What
does not change per request is gathered once per candidate set and task (`_Columns`, kept per set:
the filters hand over one of a few lists — every deployment, those offering a capability, those
whose circuit is closed), so a request only builds its time-to-first-token row, and only when
latencies have been observed. Used from `NUMPY_FROM` candidates (score.py).

Each element goes through the same IEEE operations, in the same order, as in the loop (adding an
exact 0 or multiplying by 1 changes no double), so the scores are the same doubles; and a stable
argsort of the negated scores is `sorted(..., reverse=True)`'s order, ties in group order. With a
`Front` (`rules` and `tier` putting a target first), `np.lexsort` on (front, negated scores) gives
that order with the front's candidates first in the same sort, as `front_first` does after it.
The scores stay an array: only explanations read them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ranking import Front, Ranking
from .util import PerCandidateSet

if TYPE_CHECKING:
    from ...deployment import Deployment
    from ...resilience.health import HealthTracker

# a candidate's (USD per input token, USD per output token, TTFT prior ms, ms per output token, quality)
Row = tuple[float, float, float, float, float]
_SETS_KEPT = 64  # candidate sets whose columns are kept (distinct filter outcomes; more are gathered per request)
_MIN = np.minimum.reduce
_MAX = np.maximum.reduce
_EWMA_TTFT = attrgetter("ewma_ttft_ms")


class _Columns:
    """One candidate set's numbers for one task, as three 3×n matrices: with x = (input tokens,
    output tokens), `base + x_in·per_in + x_out·per_out` has the rows (expected USD, expected ms,
    quality), each element computed as the loop does (`fi·a + fo·b`, `ttft + fo·v`, `q`)."""

    __slots__ = ("base", "deployments", "names", "per_in", "per_out", "ttft")

    def __init__(self, table: list[Row], candidates: Sequence[Deployment]) -> None:
        a, b, ttft, v, q = (np.array(col, dtype=np.float64) for col in zip(*table, strict=True))
        zero = np.zeros_like(a)
        self.base = np.stack((zero, ttft, q))
        self.per_in = np.stack((a, zero, zero))
        self.per_out = np.stack((b, v, zero))
        self.names = [d.name for d in candidates]
        self.deployments = np.fromiter(candidates, dtype=object, count=len(candidates))  # (the chain: one gather)
        self.ttft = [row[2] for row in table]  # the priors, as floats

    def latency_base(self, health: HealthTracker) -> Any:
        """`base` with each candidate's observed time to first token (its EWMA) instead of the prior."""
        by_name = health.by_name
        if health.ttft_observed >= len(by_name):  # every deployment observed: two C-level passes
            observed = list(map(_EWMA_TTFT, map(by_name.__getitem__, self.names)))
        else:
            observed = [t if (h := by_name.get(n)) is None or (o := h.ewma_ttft_ms) is None else o
                        for n, t in zip(self.names, self.ttft, strict=True)]
        base = self.base.copy()
        base[1] = observed
        return base


class ScoreColumns:
    """The columns of one `score` strategy, per candidate set and task, built on first use."""

    def __init__(self, table: Callable[[str, Sequence[Deployment]], list[Row]],
                 health: HealthTracker | None) -> None:
        self.table = table  # (task, candidates) -> each candidate's numbers for the task
        self.health = health
        self.sets: PerCandidateSet[dict[str, _Columns]] = PerCandidateSet(lambda _: {}, _SETS_KEPT)

    def columns(self, task: str, candidates: Sequence[Deployment]) -> _Columns:
        per_task = self.sets.get(candidates)
        cols = per_task.get(task)
        if cols is None:
            cols = per_task[task] = _Columns(self.table(task, candidates), candidates)
        return cols

    def scores(self, cols: _Columns, fi: float, fo: float, weights: tuple[float, float, float],
               spread: Callable[[float, float, float, bool], tuple[float, float]]) -> Any:
        """The candidates' scores (a float64 array by position), from their `columns`:
        `spread(lo, hi, weight, low_is_best)` gives each component's (constant, coefficient), as
        score.py's `_spread` does from the values."""
        health = self.health
        base = cols.latency_base(health) if health is not None and health.ttft_observed else cols.base
        x = base + fi * cols.per_in + fo * cols.per_out  # rows: cost, latency, quality
        lo, hi = _MIN(x, axis=1).tolist(), _MAX(x, axis=1).tolist()
        wc, wl, wq = weights
        kc, ac = spread(lo[0], hi[0], wc, True)
        kl, al = spread(lo[1], hi[1], wl, True)
        kq, aq = spread(lo[2], hi[2], wq, False)
        s = (kc + kl + kq) + ac * x[0]
        s += al * x[1]
        s += aq * x[2]
        return s

    @staticmethod
    def ranking(cols: _Columns, candidates: Sequence[Deployment], scores: Any, reason: str, front: Front | None
                ) -> Ranking:
        """The candidates by `scores` (a float64 array by position), highest first, ties in position
        order (`order_by_score`'s order); with `front`, its candidates first, each part in that order
        (`front_first`'s), in one sort whose key the front keeps."""
        if front is None:
            order = (-scores).argsort(kind="stable")
        else:
            if front.sort_key is None:
                front.sort_key = np.logical_not(front.flags)  # (sorts False first: the flagged)
            order = np.lexsort((-scores, front.sort_key))  # (a stable sort per key, the last key first)
        return _ArrayRanking(candidates, order, scores, reason, cols.deployments)


class _ArrayRanking(Ranking):
    """A ranking made of numpy arrays: the chain is gathered from the candidate set's object array,
    and the scores stay an array until an explanation reads them (then Python floats)."""

    __slots__ = ("_array", "_objects", "_positions")

    def __init__(self, candidates: Sequence[Deployment], order: Any, scores: Any, reason: str, objects: Any
                 ) -> None:
        super().__init__(candidates, order.tolist(), scores, reason)
        self._positions, self._objects, self._array = order, objects, scores

    @property
    def deployments(self) -> list[Deployment]:
        if self._deployments is None:
            self._deployments = self._objects[self._positions].tolist()
        return self._deployments

    def score(self, pos: int) -> float:
        if self._array is not None:  # the first read: an explanation reads every score
            self.scores, self._array = self._array.tolist(), None
        return self.scores[pos]


__all__ = ["ScoreColumns"]
