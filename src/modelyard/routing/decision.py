"""A RouteDecision that builds its explanation on first read.

Every request gets a decision, but its per-candidate verdicts and its features dict are read only
when something explains or logs it. `LazyDecision` is a `RouteDecision` (same fields, same
`to_dict`, isinstance holds) whose `candidates` and `features` are made by a function the router
hands over, on the first read; writes replace them as on the plain dataclass. Pickling or copying
gives a plain, fully built `RouteDecision`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..types import RouteDecision, Scored

_CANDIDATES = RouteDecision.__dict__["candidates"]  # the dataclass's slot descriptors
_FEATURES = RouteDecision.__dict__["features"]


# What the log says of a quick-path decision's features: routing did not analyse the request
# (its strategy reads no features and the prompt's length alone fits every context window).
_SKIPPED: dict[str, Any] = {"analysis": "skipped"}
_LOG_CACHE_SIZE = 64  # distinct outcomes (chosen, fallbacks, attempts) kept per group


class DeferredAnalysis:
    """Marks a features maker that would run the request analysis routing itself did without (the
    quick path): the request log leaves such features out instead of computing them for it."""

    __slots__ = ()


class _Built:
    """A RouteDecision field made on first read by the function in attribute `maker`; a write
    replaces it (and drops the function)."""

    def __init__(self, slot: Any, maker: str) -> None:
        self.slot, self.maker = slot, maker

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        make = getattr(obj, self.maker)
        if make is not None:
            self.slot.__set__(obj, make())
            setattr(obj, self.maker, None)
        return self.slot.__get__(obj)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj, self.maker, None)
        self.slot.__set__(obj, value)


class LazyDecision(RouteDecision):
    __slots__ = ("_log_cache", "_make_candidates", "_make_features")
    _make_candidates: Callable[[], list[Scored]] | None
    _make_features: Callable[[], dict[str, Any]] | None
    _log_cache: dict[Any, str] | None

    @classmethod
    def build(cls, model: str, deployment: str, strategy: str, reason: str, rule: str | None,
              candidates: Callable[[], list[Scored]], features: Callable[[], dict[str, Any]],
              log_cache: dict[Any, str] | None = None) -> LazyDecision:
        """A decision whose candidates and features come from these functions, called once, when read.
        `log_cache`: where to keep the logged JSON when the candidates follow from the group alone."""
        d = cls.__new__(cls)
        d.model, d.deployment, d.strategy, d.reason, d.rule = model, deployment, strategy, reason, rule
        d.fallbacks, d.attempts, d.failures, d.upstream_s = [], 0, [], 0.0
        d._make_candidates, d._make_features, d._log_cache = candidates, features, log_cache
        return d

    candidates = _Built(_CANDIDATES, "_make_candidates")
    features = _Built(_FEATURES, "_make_features")

    def log_dict(self) -> dict[str, Any]:
        """As `to_dict`, without running an analysis that routing skipped (see RouteDecision.log_dict)."""
        skipped = isinstance(self._make_features, DeferredAnalysis)
        return self._as_dict(_SKIPPED if skipped else self.features)

    def log_json(self) -> str:
        """`log_dict` as JSON text. A decision routed without analysis whose candidates the router
        marks as a function of the group alone (a `log_cache`: first-healthy with nothing filtered
        out, say) is encoded once per distinct outcome, not per request: the log would otherwise
        build every candidate's verdict for each row."""
        cache = self._log_cache
        if cache is None or self._make_candidates is None or not isinstance(self._make_features, DeferredAnalysis):
            return orjson.dumps(self.log_dict()).decode()
        key = (self.deployment, self.reason, self.rule, tuple(self.fallbacks), self.attempts)
        text = cache.get(key)
        if text is None:
            text = orjson.dumps(self.log_dict()).decode()
            if len(cache) < _LOG_CACHE_SIZE:
                cache[key] = text
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (RouteDecision, (self.model, self.deployment, self.strategy, self.reason, self.candidates,
                                self.features, self.fallbacks, self.attempts, self.rule))


__all__ = ["DeferredAnalysis", "LazyDecision"]
