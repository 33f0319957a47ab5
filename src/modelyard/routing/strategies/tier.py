"""`tier`: user tier × task value → model class (free users get the economy class, enterprise
traffic marked high-value gets the frontier class).

    strategy: tier
    options:
      classes:                         # class -> groups/deployments (default: by card quality)
        frontier: [sim/frontier]
        standard: [sim/balanced]
        economy: [sim/fast, sim/local]
      matrix:                          # tier -> task value (low|medium|high|"*") -> class
        free: {"*": economy}
        pro: {low: economy, medium: standard, high: frontier}
        enterprise: {low: standard, "*": frontier}
      default_tier: free               # requests without a (known) tier
      default_value: medium            # requests without a task value
      then: score                      # orders within the class, then the rest (fallbacks)

Tier and task value come from the request (`metadata` / `extra_body.modelyard`: `tier`, `task_value`).
Without `classes`, deployments are classed by their card's general quality: ≥ 0.88 frontier,
≥ 0.75 standard, else economy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...types import ChatRequest, Scored
from ..features import Features
from ..ranking import Front, Preferred, Ranked, Ranking
from .base import ConfigNames, Strategy, StrategyConfigError, StrategyContext, StrategyTraits, register_strategy
from .rules import Target, _inner, _targets, inner_detail, inner_strategy
from .util import Options, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment

VALUES = ("low", "medium", "high")
DEFAULT_MATRIX: dict[str, dict[str, str]] = {
    "free": {"*": "economy"},
    "pro": {"low": "economy", "medium": "standard", "high": "frontier"},
    "enterprise": {"low": "standard", "*": "frontier"},
}


class TierOptions(Options):
    classes: dict[str, Target] | None = None
    matrix: dict[str, dict[str, str]] = DEFAULT_MATRIX
    default_tier: str = "free"
    default_value: str = "medium"
    then: str = "score"
    then_options: dict[str, Any] = {}


def _class_of(quality: float) -> str:
    return "frontier" if quality >= 0.88 else "standard" if quality >= 0.75 else "economy"


def _check(opts: TierOptions, names: ConfigNames | None) -> None:
    class_names = set(opts.classes) if opts.classes is not None else {"frontier", "standard", "economy"}
    for tier, row in opts.matrix.items():
        for value, cls in row.items():
            if value != "*" and value not in VALUES:
                raise StrategyConfigError(("matrix", tier, value),
                                          f"unknown task value '{value}'; one of: {', '.join(VALUES)}, *")
            if cls not in class_names:
                raise StrategyConfigError(("matrix", tier, value),
                                          f"unknown class '{cls}'; classes: {', '.join(sorted(class_names))}")
    if opts.default_tier not in opts.matrix:
        raise StrategyConfigError(("default_tier",), f"'{opts.default_tier}' is not a tier of the matrix "
                                                     f"({', '.join(opts.matrix)})")
    if opts.default_value not in VALUES:
        raise StrategyConfigError(("default_value",), f"one of: {', '.join(VALUES)}")
    if opts.classes is not None and names is not None:
        for cls, target in opts.classes.items():
            _targets(target, ("classes", cls), names)
    _inner(opts.then, opts.then_options, names)


def validate_tier(options: dict[str, Any], names: ConfigNames) -> None:
    _check(parse_options(TierOptions, options), names)


class Tier(Strategy):
    name = "tier"

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        opts = parse_options(TierOptions, options)
        _check(opts, None)
        group = tuple(ctx.groups.get(ctx.group, ()))
        names = ConfigNames(group=ctx.group, group_deployments=group, deployments=frozenset(ctx.deployments),
                            groups={g: tuple(d) for g, d in ctx.groups.items()})
        if opts.classes is not None:
            self.classes = {c: _targets(t, ("classes", c), names) for c, t in opts.classes.items()}
        else:
            self.classes = {}
            for name in group:
                cls = _class_of(ctx.deployments[name].card.quality_for("general"))
                self.classes[cls] = self.classes.get(cls, frozenset()) | {name}
        self.matrix = opts.matrix
        self.default_tier, self.default_value = opts.default_tier, opts.default_value
        self.inner = inner_strategy(opts.then, opts.then_options, ctx)
        self.then = opts.then
        self.traits = StrategyTraits(needs_task=self.inner.traits.needs_task)  # tier and value: request hints

    def class_for(self, f: Features) -> tuple[str, str, str]:
        tier = f.tier if f.tier in self.matrix else self.default_tier
        value = f.task_value or self.default_value
        row = self.matrix[tier]
        return tier, value, row.get(value, row.get("*", ""))

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        r = self.order(req, features, candidates)
        return Ranked(r.scored(), rule=r.rule)

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> Ranking:
        """The inner strategy's order, with the class's deployments moved to the front."""
        tier, value, cls = self.class_for(features)
        members = self.classes.get(cls, frozenset())
        label = f"{tier}/{value} -> {cls}"
        front = Front([d.name in members for d in candidates])
        return Preferred(self.inner.order_front(req, features, candidates, front), front,
                         f"class {cls} ({label})", f"outside class {cls} (fallback)", label)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        return inner_detail(self.inner, self.then, req, features, candidates)


register_strategy("tier", Tier, validate=validate_tier)
