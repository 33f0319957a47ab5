"""A strategy's order of its candidates, with the per-candidate explanation built only when read.

The hot path needs one thing from a strategy: the deployments, best first (the chain). Scores and
reasons per candidate are for explanations (`route --explain`, POST /v1/route/explain, the request
log), so a `Ranking` keeps the order as positions into the candidate list, the scores by position
and one reason (or a reason per position), and builds the `Scored` entries on first request.

Strategies that can rank this way implement `order(req, features, candidates) -> Ranking` next to
`rank` (which stays the public contract: `rank` is `order(...).scored()`); for the others the router
wraps what `rank` returned with `Ranking.of`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress
from operator import not_
from typing import TYPE_CHECKING

from ..types import Scored

if TYPE_CHECKING:
    from ..deployment import Deployment


class Ranking:
    """Candidates best first: `deployments` (the chain) eagerly, `scored()` lazily and once."""

    __slots__ = ("_deployments", "_scored", "candidates", "order", "reason", "rule", "scores")

    def __init__(self, candidates: Sequence[Deployment], order: Sequence[int], scores: Sequence[float],
                 reason: str | Callable[[int], str], rule: str | None = None) -> None:
        self.candidates = candidates
        self.order = order  # positions into `candidates`, best first
        self.scores = scores  # by position (not by rank)
        self.reason = reason  # one reason for all, or position -> reason
        self.rule = rule  # the rule (rules) or class (tier) that decided, if any
        self._deployments: list[Deployment] | None = None
        self._scored: list[Scored] | None = None

    @property
    def deployments(self) -> list[Deployment]:
        """The candidates best first: the chain (built on first read)."""
        deps = self._deployments
        if deps is None:
            cands = self.candidates
            deps = self._deployments = list(map(cands.__getitem__, self.order))  # (faster than itemgetter)
        return deps

    @classmethod
    def of(cls, scored: list[Scored], candidates: Sequence[Deployment], rule: str | None = None) -> Ranking:
        """Wrap a `rank` result (already materialised; a permutation of `candidates`)."""
        pos = {d.name: i for i, d in enumerate(candidates)}
        order = [pos[s.deployment] for s in scored]
        scores = [0.0] * len(candidates)
        reasons = [""] * len(candidates)
        for i, s in zip(order, scored, strict=True):
            scores[i], reasons[i] = s.score, s.reason
        r = cls(candidates, order, scores, reasons.__getitem__,
                rule if rule is not None else getattr(scored, "rule", None))
        r._scored = scored
        return r

    def relabel(self, reason: str, rule: str | None) -> Ranking:
        """The same order and scores, with one new reason for every candidate."""
        r = Ranking.__new__(Ranking)
        r.candidates, r.order, r.scores, r._deployments = self.candidates, self.order, self.scores, self._deployments
        r.reason, r.rule, r._scored = reason, rule, None
        if type(self) is not Ranking:  # keep a subclass's scores
            r.scores = [self.score(i) for i in range(len(self.candidates))]
        return r

    def score(self, pos: int) -> float:
        return self.scores[pos]

    def why(self, pos: int) -> str:
        reason = self.reason
        return reason if isinstance(reason, str) else reason(pos)

    def top_reason(self) -> str:
        """The reason of the winner (what RouteDecision.reason says), without building the rest."""
        if self._scored is not None:
            return self._scored[0].reason if self._scored else ""
        return self.why(self.order[0]) if self.order else ""

    def scored(self) -> list[Scored]:
        """Every candidate as a fresh `Scored`, best first (built on the first call, then kept)."""
        if self._scored is None:
            cands = self.candidates
            if type(self) is Ranking and isinstance(self.reason, str):  # the common case, without calls
                scores, reason = self.scores, self.reason
                self._scored = [Scored(cands[i].name, scores[i], True, reason) for i in self.order]
            else:
                score, why = self.score, self.why
                self._scored = [Scored(cands[i].name, score(i), True, why(i)) for i in self.order]
        return self._scored

    def __len__(self) -> int:
        return len(self.deployments)


class Preferred(Ranking):
    """An inner ranking with some candidates moved to the front (a rule's or a class's targets):
    those score 1 + their inner score and say `hit`, the others keep theirs and say `miss`."""

    __slots__ = ("hit", "inner", "mask", "miss")

    def __init__(self, inner: Ranking, mask: Sequence[bool], hit: str, miss: str, rule: str) -> None:
        order = inner.order
        flags = list(map(mask.__getitem__, order))
        first = list(compress(order, flags))
        rest = list(compress(order, map(not_, flags))) if len(first) < len(order) else []
        super().__init__(inner.candidates, first + rest, inner.scores, hit, rule)
        self.inner, self.mask, self.hit, self.miss = inner, mask, hit, miss

    def score(self, pos: int) -> float:
        return self.inner.score(pos) + 1.0 if self.mask[pos] else self.inner.score(pos)

    def why(self, pos: int) -> str:
        return self.hit if self.mask[pos] else self.miss


BONUS = 2.0  # added to preferred candidates' scores (in [0, 1]) so one sort puts them first


class Boosted(Ranking):
    """Like `Preferred`, for an inner strategy that sorted with `BONUS` added to the preferred
    candidates' scores (`bonus` by position: BONUS or 0.0): reports them as 1 + their own score."""

    __slots__ = ("bonus", "hit", "miss")

    def __init__(self, inner: Ranking, bonus: Sequence[float], hit: str, miss: str, rule: str) -> None:
        # Ranking's fields set here, not through super().__init__: one call less per rules decision
        self.candidates, self.order, self.scores, self.reason, self.rule = \
            inner.candidates, inner.order, inner.scores, hit, rule
        self._deployments, self._scored = inner._deployments, None
        self.bonus, self.hit, self.miss = bonus, hit, miss

    def score(self, pos: int) -> float:
        return self.scores[pos] - (BONUS - 1.0) if self.bonus[pos] else self.scores[pos]

    def why(self, pos: int) -> str:
        return self.hit if self.bonus[pos] else self.miss

    def scored(self) -> list[Scored]:
        if self._scored is None:
            cands, scores, bonus, hit, miss = self.candidates, self.scores, self.bonus, self.hit, self.miss
            self._scored = [Scored(cands[i].name, scores[i] - (BONUS - 1.0), True, hit) if bonus[i]
                            else Scored(cands[i].name, scores[i], True, miss) for i in self.order]
        return self._scored


__all__ = ["BONUS", "Boosted", "Preferred", "Ranking"]
