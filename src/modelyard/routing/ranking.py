"""A strategy's order of its candidates, with the per-candidate explanation built only when read.

The hot path needs one thing from a strategy: the deployments, best first (the chain). Scores and
reasons per candidate are for explanations (`route --explain`, POST /v1/route/explain, the request
log), so a `Ranking` keeps the order as positions into the candidate list, the scores by position
and one reason (or a reason per position), and builds the `Scored` entries on first read.
`Strategy.order` returns one; `Strategy.rank` is `order(...).scored()` for the built-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import filterfalse
from typing import TYPE_CHECKING, Any

from ..types import Scored

if TYPE_CHECKING:
    from ..deployment import Deployment


class Ranked(list[Scored]):
    """A `rank` result that can also say which rule decided it (rules, tier); plain lists are fine too."""

    rule: str | None = None

    def __init__(self, items: list[Scored] | None = None, rule: str | None = None) -> None:
        super().__init__(items or ())
        self.rule = rule


class Ranking:
    """Candidates best first: `deployments` (the chain) and `scored()`, each built on first read."""

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
        """The candidates best first: the chain."""
        if self._deployments is None:
            self._deployments = list(map(self.candidates.__getitem__, self.order))
        return self._deployments

    @classmethod
    def of(cls, scored: list[Scored], candidates: Sequence[Deployment], rule: str | None = None) -> Ranking:
        """Wrap a `rank` result (a permutation of `candidates`)."""
        pos = {d.name: i for i, d in enumerate(candidates)}
        order = [pos[s.deployment] for s in scored]
        scores = [0.0] * len(candidates)
        reasons = [""] * len(candidates)
        for i, s in zip(order, scored, strict=True):
            scores[i], reasons[i] = s.score, s.reason
        if rule is None and isinstance(scored, Ranked):
            rule = scored.rule
        r = cls(candidates, order, scores, reasons.__getitem__, rule)
        r._scored = scored
        return r

    def front_first(self, front: Front) -> Ranking:
        """The same scores and reasons, the front's candidates first (see `Strategy.order_front`)."""
        return Reordered(self, front_first(self.order, front.flags))

    def relabel(self, reason: str, rule: str | None) -> Ranking:
        """The same order and scores, with one new reason for every candidate."""
        return Relabelled(self, reason, rule)

    def score(self, pos: int) -> float:
        return self.scores[pos]

    def why(self, pos: int) -> str:
        reason = self.reason
        return reason if isinstance(reason, str) else reason(pos)

    def top_reason(self) -> str:
        """The reason of the winner (what RouteDecision.reason says), without building the rest."""
        return self.why(self.order[0]) if self.order else ""

    def scored(self) -> list[Scored]:
        """Every candidate as a fresh `Scored`, best first (built on the first call, then kept)."""
        if self._scored is None:
            cands = self.candidates
            self._scored = [Scored(cands[i].name, self.score(i), True, self.why(i)) for i in self.order]
        return self._scored

    def __len__(self) -> int:
        return len(self.order)


class Front:
    """Which candidates go first (a rule's or a class's targets among one candidate set), a flag per
    candidate. `rules` keeps one per candidate set and rule, so what an inner strategy derives from
    the flags for its sort (`score`: a numpy key) is kept in `sort_key` and made once."""

    __slots__ = ("any", "flags", "sort_key")

    def __init__(self, flags: list[bool]) -> None:
        self.flags = flags
        self.any = True in flags
        self.sort_key: Any = None  # set by the strategy that orders with it


def front_first(order: Sequence[int], flags: Sequence[bool]) -> list[int]:
    """`order` with the flagged positions first, each part in `order`'s order."""
    return [*filter(flags.__getitem__, order), *filterfalse(flags.__getitem__, order)]


class Reordered(Ranking):
    """Another ranking's scores and reasons in a new order."""

    __slots__ = ("inner",)

    def __init__(self, inner: Ranking, order: Sequence[int]) -> None:
        super().__init__(inner.candidates, order, inner.scores, inner.reason, inner.rule)
        self.inner = inner

    def score(self, pos: int) -> float:
        return self.inner.score(pos)

    def why(self, pos: int) -> str:
        return self.inner.why(pos)


class Preferred(Ranking):
    """Some candidates moved to the front (a rule's or a class's targets), from the inner strategy's
    `order_front` ranking (its order with them first): those score 1 + their inner score and say
    `hit`, the others keep theirs and say `miss`."""

    __slots__ = ("hit", "inner", "mask", "miss")

    def __init__(self, inner: Ranking, front: Front, hit: str, miss: str, rule: str) -> None:
        super().__init__(inner.candidates, inner.order, inner.scores, hit, rule)
        self.inner, self.mask, self.hit, self.miss = inner, front.flags, hit, miss

    @property
    def deployments(self) -> list[Deployment]:
        return self.inner.deployments  # (the same order)

    def score(self, pos: int) -> float:
        return self.inner.score(pos) + 1.0 if self.mask[pos] else self.inner.score(pos)

    def why(self, pos: int) -> str:
        return self.hit if self.mask[pos] else self.miss


class Relabelled(Ranking):
    """An inner ranking's order and scores under one new reason (no rule's targets were left)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Ranking, reason: str, rule: str | None) -> None:
        super().__init__(inner.candidates, inner.order, inner.scores, reason, rule)
        self.inner = inner

    @property
    def deployments(self) -> list[Deployment]:
        return self.inner.deployments  # (the same order)

    def score(self, pos: int) -> float:
        return self.inner.score(pos)


__all__ = ["Front", "Preferred", "Ranked", "Ranking", "Relabelled", "Reordered", "front_first"]
