"""Strategies that only order: `first-healthy` (group order), `weighted` (a weighted shuffle by the
deployments' `weight`) and `round-robin` (rotate through the group)."""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any

from ...types import ChatRequest, Scored
from ..features import Features
from ..ranking import Ranking
from .base import Strategy, StrategyContext, StrategyTraits, register_strategy
from .util import Options, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment


class NoOptions(Options):
    pass


def _no_options(options: dict[str, Any], names: Any) -> None:
    parse_options(NoOptions, options)


class FirstHealthy(Strategy):
    """The group's order as written: the first healthy deployment serves, the rest are fallbacks."""

    name = "first-healthy"
    traits = StrategyTraits(needs_task=False, reads_features=False)  # order only

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        parse_options(NoOptions, options)

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        return self.order(req, features, candidates).scored()

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> Ranking:
        """The candidates as they are; scores and reasons are made only if read."""
        return InGroupOrder(candidates)


class InGroupOrder(Ranking):
    """first-healthy's ranking: position i of n scores (n − i) / n."""

    __slots__ = ()

    def __init__(self, candidates: list[Deployment]) -> None:
        super().__init__(candidates, range(len(candidates)), (), "")

    def score(self, pos: int) -> float:
        n = len(self.candidates)
        return (n - pos) / n

    def why(self, pos: int) -> str:
        return f"position {pos + 1} in group order"


class Weighted(Strategy):
    """Each position drawn with probability ∝ `weight` among those left (traffic splits, canaries).
    Deterministic mode: by weight, heaviest first."""

    name = "weighted"
    traits = StrategyTraits(needs_task=False, reads_features=False)  # order only

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        parse_options(NoOptions, options)
        self.rng = ctx.rng
        self.deterministic = ctx.deterministic

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        total = sum(d.weight for d in candidates) or 1.0
        if self.deterministic:
            order = sorted(candidates, key=lambda d: -d.weight)
        else:
            order = weighted_order(candidates, self.rng)
        return [Scored(d.name, d.weight / total, True, f"weight {d.weight:g} ({d.weight / total:.0%} of traffic)")
                for d in order]


class RoundRobin(Strategy):
    """Rotate the group: request i starts at deployment i mod n (of those eligible)."""

    name = "round-robin"
    traits = StrategyTraits(needs_task=False, reads_features=False)  # order only

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        parse_options(NoOptions, options)
        self.counter = itertools.count()

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        n = len(candidates)
        if n == 0:
            return []
        k = next(self.counter) % n
        rotated = candidates[k:] + candidates[:k]
        return [Scored(d.name, (n - i) / n, True, f"turn {i + 1} of the rotation") for i, d in enumerate(rotated)]


def weighted_order(deps: list[Deployment], rng: random.Random) -> list[Deployment]:
    """A weighted shuffle: each position drawn with probability ∝ weight among those left."""
    pool = list(deps)
    out: list[Deployment] = []
    while pool:
        total = sum(d.weight for d in pool)
        if total <= 0:
            out.extend(pool)
            break
        x = rng.random() * total
        for i, d in enumerate(pool):
            x -= d.weight
            if x < 0:
                out.append(pool.pop(i))
                break
        else:
            out.append(pool.pop())
    return out


register_strategy("first-healthy", FirstHealthy, validate=_no_options)
register_strategy("weighted", Weighted, validate=_no_options)
register_strategy("round-robin", RoundRobin, validate=_no_options)
