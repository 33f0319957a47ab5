"""The strategy interface and registry.

A strategy orders the candidates that survived the filters. It is pure and fast: no I/O, nothing
computed per request that could be computed at config load (do that in the factory). Strategies are
registered by name; a model group's `strategy:` names one, and its `options:` dict is handed to the
factory once, when the config is loaded.

    from modelyard.routing.strategies.base import register_strategy

    class MyStrategy:
        name = "mine"
        def __init__(self, options, ctx): ...
        def rank(self, req, features, candidates): return [Scored(d.name, 1.0) for d in candidates]

    register_strategy("mine", MyStrategy)

Contract of `rank`: return every candidate exactly once (a permutation) as fresh `Scored` objects (wrappers
such as `rules` annotate them in place), best first, with a score
(higher is better; the scale is the strategy's own) and a short reason. `rank` runs on every request,
so keep reasons cheap (a constant string per strategy or rule; no per-candidate formatting). A
strategy may also implement `describe(req, features, candidates) -> {deployment: detail}`: the router
calls it only for explanations (`route --explain`, POST /v1/route/explain) and appends the detail
(cost, latency, quality figures...) to each reason. A strategy that never reads the task, complexity
or output estimate may set `needs_task = False`: the router then skips the classifier for its group
(`Features.analyzed` is False). A strategy may also define `prepare(req) -> None` for slow
per-request work (an embedding, say): the router collects it in `Router.prepares` and the gateway
runs it in a worker thread before `plan`. A strategy with nothing to prepare must not define it:
every defined `prepare` costs a thread hop per request. A factory may raise `StrategyConfigError` naming
the option that is wrong; config loading reports it as `file: model_groups.<group>.options.<field>`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ...types import ChatRequest, Scored
from ..features import Features

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


class Ranked(list[Scored]):
    """A ranking that can also say which rule decided it (rules, tier); plain lists are fine too."""

    rule: str | None = None

    def __init__(self, items: list[Scored] | None = None, rule: str | None = None) -> None:
        super().__init__(items or ())
        self.rule = rule


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
    # Hooks supplied by other subsystems, looked up at rank time (so they can be set after load):
    # "budget": (features) -> (spent_usd, budget_usd) | None  — see candidates.BudgetHook
    # "headroom": (deployment, features) -> reason | None     — see candidates.HeadroomHook
    hooks: dict[str, Any] = field(default_factory=dict)
    usage: UsageMeter | None = None  # requests/tokens per deployment in the current minute


@runtime_checkable
class Strategy(Protocol):
    name: str

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        """Every candidate once, best first."""
        ...


StrategyFactory = Callable[[dict[str, Any], StrategyContext], Strategy]
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
    return STRATEGIES[name](options, ctx)


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
