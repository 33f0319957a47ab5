"""The strategy interface and registry.

A strategy orders the candidates that survived the filters. It is pure and fast: no I/O, nothing
per request that could be done at config load (do that in `__init__` / the factory). Strategies are
registered by name; a model group's `strategy:` names one, and its `options:` dict is handed to the
factory once, when the config is loaded.

    from modelyard.routing.strategies.base import Strategy, StrategyTraits, register_strategy

    class Reverse(Strategy):
        name = "reverse"
        traits = StrategyTraits(needs_task=False)   # reads no task/complexity: no classifier run

        def __init__(self, options, ctx): ...
        def rank(self, req, features, candidates):
            return [Scored(d.name, float(i), True, "reversed") for i, d in enumerate(candidates)][::-1]

    register_strategy("reverse", Reverse)

The interface (`Strategy`):
- `rank(req, features, candidates) -> list[Scored]` (required): every candidate exactly once, best
  first, as fresh `Scored` objects with a score (higher is better; the scale is the strategy's
  own) and a short reason. Keep reasons cheap: a constant string, no per-candidate formatting.
- `order(...) -> Ranking`: what the router calls. The default wraps `rank`, checking that it returned
  a permutation (a broken one is repaired and logged). Built-ins override it to build the ranking
  without a `Scored` per candidate (ranking.py).
- `order_front(..., front) -> Ranking`: `order` with some candidates first (a rule's targets), each
  part in the strategy's order; what `rules` and `tier` call on their `then` strategy. The default
  reorders `order`'s ranking; `score` does it in its sort.
- `describe(...) -> {deployment: detail}`: only for explanations (`route --explain`, POST
  /v1/route/explain); the router appends the detail to each reason. Default: nothing.
- `prepare(req)`: slow per-request work (an embedding), run by the gateway in a worker thread
  before `plan`; only for strategies whose traits say `prepares=True` (each costs a thread hop).
- `traits` (`StrategyTraits`): what the router may skip for this strategy (a class attribute, or set
  in `__init__` when the options decide it, as `rules` does from what its conditions read).

A factory may also return any object with `name` and `rank` (and optionally `describe`, `prepare`,
`needs_task`) without subclassing: `as_strategy` adapts it once, at load. A factory may raise
`StrategyConfigError` naming the option that is wrong; config loading reports it as
`file: model_groups.<group>.options.<field>`.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ...types import ChatRequest, Scored
from ..features import Features
from ..hooks import RoutingHooks
from ..ranking import Front, Ranked, Ranking

if TYPE_CHECKING:
    from ...catalog import Catalog
    from ...deployment import Deployment
    from ...resilience.health import HealthTracker
    from ..usage import UsageMeter


class StrategyConfigError(ValueError):
    """A strategy option is wrong. `loc` is the path under the group's `options`, e.g.
    `("rules", 2, "when", "complexity")`; a dotted string is accepted too."""

    def __init__(self, loc: tuple[str | int, ...] | str, msg: str) -> None:
        super().__init__(msg)
        self.loc: tuple[str | int, ...] = tuple(loc.split(".")) if isinstance(loc, str) else tuple(loc)
        self.msg = msg


@dataclass
class StrategyContext:
    """What a strategy factory may use at build time (and keep references to for `rank`)."""

    group: str  # the model group being built
    deployments: dict[str, Deployment]  # every deployment of the config, by name
    groups: dict[str, list[str]]  # every model group → its deployment names
    catalog: Catalog | None = None
    health: HealthTracker | None = None
    rng: random.Random = field(default_factory=random.Random)
    deterministic: bool = False  # tests: no randomness (weighted → by weight, random ties → group order)
    hooks: RoutingHooks = field(default_factory=RoutingHooks)  # read per request (filled after load)
    usage: UsageMeter | None = None  # requests/tokens per deployment in the current minute


@dataclass(frozen=True, slots=True)
class StrategyTraits:
    """What a strategy reads, so the router can skip the rest."""

    needs_task: bool = True  # reads task, complexity or the output estimate: False skips the classifier
    reads_features: bool = True  # reads any feature: False lets a group skip the analysis altogether
    prepares: bool = False  # has a `prepare` step for the gateway to run in a worker thread


class Strategy(ABC):
    """A routing strategy (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    traits: StrategyTraits = StrategyTraits()  # per class, or per instance when options decide it

    @abstractmethod
    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        """Every candidate once, best first."""

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> Ranking:
        """The candidates best first, as the router reads them: `rank`, checked."""
        return Ranking.of(checked(self.rank(req, features, candidates), candidates, self.name), candidates)

    def order_front(self, req: ChatRequest, features: Features, candidates: list[Deployment],
                    front: Front) -> Ranking:
        """`order`, with the candidates `front` flags moved ahead of the others, each part in this
        strategy's order: how `rules` and `tier` put a target's deployments first. A strategy that
        sorts may do it in its sort (`score` does)."""
        return self.order(req, features, candidates).front_first(front)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        """Per-candidate detail for explanations only."""
        return {}

    def prepare(self, req: ChatRequest) -> None:  # noqa: B027  (optional step: a no-op by default)
        """Slow per-request work, run off the event loop before routing (when `traits.prepares`)."""


class _Adapted(Strategy):
    """A strategy object that does not subclass `Strategy` (a duck-typed plugin), read once at load."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.plugin_name = getattr(inner, "name", name)
        self._describe = getattr(inner, "describe", None)
        self._prepare = getattr(inner, "prepare", None)
        self.traits = StrategyTraits(needs_task=getattr(inner, "needs_task", True), prepares=self._prepare is not None)

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        return list(self.inner.rank(req, features, candidates))

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> Ranking:
        ranked = self.inner.rank(req, features, candidates)
        return Ranking.of(checked(ranked, candidates, self.plugin_name), candidates,
                          ranked.rule if isinstance(ranked, Ranked) else None)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        return self._describe(req, features, candidates) if self._describe is not None else {}

    def prepare(self, req: ChatRequest) -> None:
        if self._prepare is not None:
            self._prepare(req)


def as_strategy(obj: Any, name: str) -> Strategy:
    """`obj` as a `Strategy`: itself when it subclasses it, else adapted (a plugin's own class)."""
    return obj if isinstance(obj, Strategy) else _Adapted(obj, name)


log = logging.getLogger("modelyard.routing")


def checked(ranked: list[Scored], candidates: list[Deployment], strategy: str) -> list[Scored]:
    """`ranked` when it is a permutation of the candidates; else repaired — the valid entries in
    its order, then what it forgot — and said once in the log."""
    names = {d.name for d in candidates}
    if len(ranked) == len(candidates) and {s.deployment for s in ranked} == names:
        return ranked
    seen: set[str] = set()
    out: list[Scored] = []
    for s in ranked:
        if s.deployment in names and s.deployment not in seen:
            seen.add(s.deployment)
            out.append(s)
    out += [Scored(d.name, 0.0, True, "not ranked by the strategy") for d in candidates if d.name not in seen]
    log.warning("strategy %r did not return a permutation of its candidates; repaired", strategy)
    return Ranked(out, ranked.rule) if isinstance(ranked, Ranked) else out


StrategyFactory = Callable[[dict[str, Any], StrategyContext], Any]  # returns a Strategy (or a duck-typed one)
# validator: (options, names) -> None, raising StrategyConfigError; run when the config is parsed
StrategyValidator = Callable[[dict[str, Any], "ConfigNames"], None]
STRATEGIES: dict[str, StrategyFactory] = {}
VALIDATORS: dict[str, StrategyValidator] = {}


@dataclass(frozen=True)
class ConfigNames:
    """What a validator may check names against, before any deployment object exists."""

    group: str
    group_deployments: tuple[str, ...]
    deployments: frozenset[str]
    groups: dict[str, tuple[str, ...]]


def register_strategy(name: str, factory: StrategyFactory, *, validate: StrategyValidator | None = None) -> None:
    """Make `strategy: <name>` available in model-group config. Re-registering replaces.

    `validate` (optional) checks the options when the config is parsed, so mistakes are reported as
    `file: model_groups.<group>.options.<field>: ...` before anything starts; without it the factory's
    StrategyConfigError is reported the same way when the gateway is built.
    """
    STRATEGIES[name] = factory
    if validate is not None:
        VALIDATORS[name] = validate
    else:
        VALIDATORS.pop(name, None)


def build_strategy(name: str, options: dict[str, Any], ctx: StrategyContext) -> Strategy:
    """Instantiate a registered strategy; KeyError if the name is unknown."""
    return as_strategy(STRATEGIES[name](options, ctx), name)


def known_strategies() -> list[str]:
    return sorted(STRATEGIES)


_PLUGIN_ERRORS: dict[str, str] = {}


def lookup(name: str) -> StrategyFactory | None:
    """The factory for `name`. Unknown names first trigger an import of the optional strategy
    packages (routing/learned/), which register themselves on import."""
    factory = STRATEGIES.get(name)
    if factory is None and not _PLUGIN_ERRORS.get("_loaded"):
        _PLUGIN_ERRORS["_loaded"] = "1"
        import importlib

        for mod in ("modelyard.routing.learned",):
            try:
                importlib.import_module(mod)
            except ImportError as e:  # missing optional dependency: say so when the name is asked for
                _PLUGIN_ERRORS[mod] = str(e)
        factory = STRATEGIES.get(name)
    return factory


def plugin_errors() -> list[str]:
    """Why optional strategy packages could not be imported (for 'unknown strategy' messages)."""
    return [f"{m}: {e}" for m, e in _PLUGIN_ERRORS.items() if m != "_loaded"]
