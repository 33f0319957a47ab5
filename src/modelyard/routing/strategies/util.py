"""Helpers shared by the built-in strategies: option parsing with good errors, ordering with
tie-breaks, and min-max normalisation over the candidate set."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ...types import Scored
from .base import StrategyConfigError

if TYPE_CHECKING:
    from ...deployment import Deployment

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
TieBreak = Literal["order", "random"]


class Options(BaseModel):
    """Base of every built-in strategy's options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def parse_options(model: type[M], options: dict[str, Any], loc: tuple[str | int, ...] = ()) -> M:
    """Validate `options` into `model`, turning the first pydantic error into a StrategyConfigError
    whose loc points at the offending option."""
    try:
        return model.model_validate(options)
    except ValidationError as e:
        err = e.errors()[0]
        where = (*loc, *err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields))
            msg = f"unknown option '{where[-1]}'; known: {known}"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}"
        raise StrategyConfigError(where, msg) from None


def ordered(names: list[str], scores: list[float], reasons: list[str] | str, *, tie_break: TieBreak = "order",
            rng: random.Random | None = None) -> list[Scored]:
    """Scored entries, best (highest score) first. Ties keep group order, or are shuffled with
    `tie_break: random` (spreading load over equally good deployments). `reasons`: one per name, or
    one string for all (the cheap form `rank` should use; see base.py)."""
    idx = order_by_score(scores, tie_break, rng)
    if isinstance(reasons, str):
        return [Scored(names[i], scores[i], True, reasons) for i in idx]
    return [Scored(names[i], scores[i], True, reasons[i]) for i in idx]


def order_by_score(scores: list[float], tie_break: TieBreak = "order", rng: random.Random | None = None
                   ) -> list[int]:
    """Positions, highest score first; ties keep their order, or are shuffled with `tie_break: random`."""
    n = len(scores)
    if tie_break == "random" and rng is not None and n > 1:
        keys = [rng.random() for _ in range(n)]
        return sorted(range(n), key=lambda i: (-scores[i], keys[i]))
    return sorted(range(n), key=scores.__getitem__, reverse=True)  # stable: ties keep group order


def normalise_low(values: list[float]) -> list[float]:
    """1.0 for the lowest value of the set, 0.0 for the highest (cost, latency); all 1.0 when equal."""
    lo, hi = min(values), max(values)
    if hi <= lo:
        return [1.0] * len(values)
    span = hi - lo
    return [(hi - v) / span for v in values]


def normalise_high(values: list[float]) -> list[float]:
    """1.0 for the highest value of the set, 0.0 for the lowest (quality); all 1.0 when equal."""
    lo, hi = min(values), max(values)
    if hi <= lo:
        return [1.0] * len(values)
    span = hi - lo
    return [(v - lo) / span for v in values]


class PerCandidateSet(Generic[T]):
    """What a strategy works out once per candidate set (which candidates a rule targets, score's
    columns), for up to `kept` sets: the filters hand over one of a few distinct sets. Keyed by the
    deployments themselves (a tuple: deployments hash by identity, and the key keeps them alive)."""

    def __init__(self, make: Callable[[Sequence[Deployment]], T], kept: int = 64) -> None:
        self.make, self.kept = make, kept
        self.sets: dict[tuple[Deployment, ...], T] = {}

    def get(self, candidates: Sequence[Deployment]) -> T:
        key = tuple(candidates)
        value = self.sets.get(key)
        if value is None:
            value = self.make(candidates)
            if len(self.sets) < self.kept:
                self.sets[key] = value
        return value
