"""Cost / latency / quality strategies.

`score` ranks by a weighted sum of three components, each min-max normalised over the request's
candidate set (1 = best of this set, 0 = worst), so weights mean the same whatever the prices:
- cost: expected USD for this request (prompt estimate × input price + expected output × output price);
- latency: expected time to the whole reply (observed TTFT EWMA, else the card prior, + output / speed);
- quality: the card's prior for the request's task (config can override per deployment and task).
The quality weight grows with the request's complexity (`complexity_gain`): an easy prompt is served
well by any model, so cost and speed decide; a hard one needs the strongest.

`cheapest` is cost first (quality breaks ties); `budget-aware` is `score` whose weights slide toward
cost as the key's or team's spend approaches its budget (the `budget` hook supplies spend/budget).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ...types import ChatRequest, Scored
from ..candidates import est_cost
from ..features import TASKS, Features
from .base import ConfigNames, StrategyConfigError, StrategyContext, register_strategy
from .util import Options, TieBreak, normalise_high, normalise_low, ordered, parse_options

if TYPE_CHECKING:
    from ...providers import Deployment

# (cost, latency, quality) per preset; per request: `optimize_for` in metadata / extra_body.modelyard.
PRESETS: dict[str, tuple[float, float, float]] = {
    "balanced": (1 / 3, 1 / 3, 1 / 3),
    "cost": (0.7, 0.1, 0.2),
    "latency": (0.1, 0.7, 0.2),
    "quality": (0.1, 0.1, 0.8),
}


class Weights(Options):
    cost: float = Field(0.0, ge=0)
    latency: float = Field(0.0, ge=0)
    quality: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> Weights:
        if self.cost + self.latency + self.quality <= 0:
            raise ValueError("at least one of cost, latency, quality must be > 0")
        return self

    def normalised(self) -> tuple[float, float, float]:
        t = self.cost + self.latency + self.quality
        return self.cost / t, self.latency / t, self.quality / t


class ScoreOptions(Options):
    weights: Weights | None = None  # relative weights; default: the `optimize_for` preset
    optimize_for: Literal["balanced", "cost", "latency", "quality"] = "balanced"
    quality: dict[str, dict[str, float]] = {}  # deployment -> task (or "general") -> 0..1
    complexity_gain: float = Field(1.0, ge=0, le=1)  # quality weight × (1 + gain × (2·complexity − 1))
    tie_break: TieBreak = "order"


def _check_quality(quality: dict[str, dict[str, float]], names: ConfigNames, loc: tuple[str | int, ...]) -> None:
    for dep, per_task in quality.items():
        if dep not in names.group_deployments:
            raise StrategyConfigError((*loc, "quality", dep),
                                      f"'{dep}' is not a deployment of model group '{names.group}'")
        for task, q in per_task.items():
            if task != "general" and task not in TASKS:
                raise StrategyConfigError((*loc, "quality", dep, task),
                                          f"unknown task '{task}'; one of: general, {', '.join(TASKS)}")
            if not 0 <= q <= 1:
                raise StrategyConfigError((*loc, "quality", dep, task), "quality must be between 0 and 1")


def validate_score(options: dict[str, Any], names: ConfigNames, loc: tuple[str | int, ...] = ()) -> None:
    opts = parse_options(ScoreOptions, options, loc)
    _check_quality(opts.quality, names, loc)


class _Table:
    """Per-deployment numbers of one candidate list, resolved once: prices, latency priors, and
    quality for every task (card prior, then config overrides)."""

    __slots__ = ("deps", "ins", "inv_tps", "names", "outs", "quality", "ttft")

    def __init__(self, deps: list[Deployment], quality: dict[str, dict[str, float]]) -> None:
        self.deps = tuple(deps)
        self.names = [d.name for d in deps]
        self.ins = [d.card.input_per_m / 1e6 for d in deps]
        self.outs = [d.card.output_per_m / 1e6 for d in deps]
        self.ttft = [d.card.ttft_ms for d in deps]
        self.inv_tps = [1000.0 / d.card.tokens_per_s for d in deps]
        self.quality = {t: [quality[d.name][t] for d in deps] for t in TASKS}


class Score:
    """Weighted cost / latency / quality, normalised over the candidate set."""

    name = "score"
    options_model: type[ScoreOptions] = ScoreOptions
    REASON = "weighted cost/latency/quality"

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        opts = parse_options(self.options_model, options)
        self.opts = opts
        self.weights = opts.weights.normalised() if opts.weights else PRESETS[opts.optimize_for]
        self.gain = opts.complexity_gain
        self.health = ctx.health
        self.rng = ctx.rng
        self.tie_break: TieBreak = "order" if ctx.deterministic else opts.tie_break
        # quality of every deployment for every task, resolved once (card prior, then overrides)
        self.quality: dict[str, dict[str, float]] = {}
        for name, dep in ctx.deployments.items():
            over = opts.quality.get(name, {})
            general = over.get("general", dep.card.quality_for("general"))
            self.quality[name] = {t: over.get(t, dep.card.quality.get(t, general)) for t in TASKS}
        group = [ctx.deployments[n] for n in ctx.groups.get(ctx.group, ()) if n in ctx.deployments]
        self.table = _Table(group, self.quality)  # the common case: every deployment of the group is a candidate

    def weights_for(self, req: ChatRequest, f: Features) -> tuple[float, float, float]:
        wc, wl, wq = PRESETS[f.optimize_for] if f.optimize_for else self.weights
        wq *= max(0.0, 1.0 + self.gain * (2.0 * f.complexity - 1.0))
        t = wc + wl + wq
        return (wc / t, wl / t, wq / t) if t > 0 else (1 / 3, 1 / 3, 1 / 3)

    def _table_for(self, candidates: list[Deployment]) -> _Table:
        t = self.table
        if len(candidates) == len(t.deps) and tuple(candidates) == t.deps:
            return t
        for d in candidates:  # deployments outside the config (a Router built without config)
            if d.name not in self.quality:
                general = d.card.quality_for("general")
                self.quality[d.name] = {k: d.card.quality.get(k, general) for k in TASKS}
        return _Table(candidates, self.quality)

    def components(self, f: Features, candidates: list[Deployment]) -> tuple[_Table, list[float], list[float],
                                                                             list[float]]:
        """(table, expected USD, expected ms, quality) per candidate."""
        t = self._table_for(candidates)
        fi, fo = f.input_tokens, f.output_tokens
        costs = [fi * a + fo * b for a, b in zip(t.ins, t.outs, strict=True)]
        ttft = t.ttft
        if self.health is not None:
            by_name = self.health.by_name
            observed = [h.ewma_ttft_ms if (h := by_name.get(n)) is not None else None for n in t.names]
            ttft = [p if o is None else o for p, o in zip(ttft, observed, strict=True)]
        lats = [a + fo * k for a, k in zip(ttft, t.inv_tps, strict=True)]
        return t, costs, lats, t.quality[f.task]

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        return self.rank_with(self.weights_for(req, features), features, candidates, self.REASON)

    def rank_with(self, weights: tuple[float, float, float], f: Features, candidates: list[Deployment],
                  reason: str) -> list[Scored]:
        if not candidates:
            return []
        wc, wl, wq = weights
        t, costs, lats, quals = self.components(f, candidates)
        cn, ln, qn = normalise_low(costs), normalise_low(lats), normalise_high(quals)
        scores = [wc * a + wl * b + wq * c for a, b, c in zip(cn, ln, qn, strict=True)]
        return ordered(t.names, scores, reason, tie_break=self.tie_break, rng=self.rng)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        wc, wl, wq = self.weights_for(req, features)
        t, costs, lats, quals = self.components(features, candidates)
        return {n: f"cost ${c:.5f}, latency {lt:.0f} ms, quality {q:.2f} (weights {wc:.2f}/{wl:.2f}/{wq:.2f})"
                for n, c, lt, q in zip(t.names, costs, lats, quals, strict=True)}


class CheapestOptions(Options):
    tie_break: TieBreak = "order"


class Cheapest:
    """Lowest expected cost first; equal costs → higher quality for the task first. Pair it with
    `min_quality` (group option or per request) for "cheapest that is good enough"."""

    name = "cheapest"

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        self.opts = parse_options(CheapestOptions, options)
        self.rng = ctx.rng
        self.tie_break: TieBreak = "order" if ctx.deterministic else self.opts.tie_break

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        if not candidates:
            return []
        costs = [est_cost(d, features) for d in candidates]
        quals = [d.card.quality_for(features.task) for d in candidates]
        cn = normalise_low(costs)
        # quality only separates equal costs: scaled below the smallest cost step
        scores = [c + 1e-6 * q for c, q in zip(cn, quals, strict=True)]
        return ordered([d.name for d in candidates], scores, "lowest expected cost", tie_break=self.tie_break,
                       rng=self.rng)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        return {d.name: f"expected cost ${est_cost(d, features):.6f}, quality {d.card.quality_for(features.task):.2f}"
                for d in candidates}


class BudgetOptions(ScoreOptions):
    start: float = Field(0.5, ge=0, lt=1)  # fraction of the budget spent where the shift begins


def validate_budget(options: dict[str, Any], names: ConfigNames) -> None:
    opts = parse_options(BudgetOptions, options)
    _check_quality(opts.quality, names, ())


class BudgetAware(Score):
    """`score`, with the cost weight sliding to 1 between `start` (fraction of budget spent) and the
    whole budget. Spend and budget come from the `budget` hook (the accounting layer's); without a
    hook or a budget for the request's key/team it is plain `score`."""

    name = "budget-aware"
    options_model = BudgetOptions

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        super().__init__(options, ctx)
        self.start = self.opts.start  # type: ignore[attr-defined]
        self.hooks = ctx.hooks

    def shifted(self, req: ChatRequest, features: Features) -> tuple[tuple[float, float, float], str]:
        """The weights after the budget shift, and why."""
        wc, wl, wq = self.weights_for(req, features)
        hook = self.hooks.get("budget")
        spent_budget = hook(features) if hook is not None else None
        if spent_budget is None or spent_budget[1] <= 0:
            return (wc, wl, wq), "no budget for this key/team: plain score"
        used = spent_budget[0] / spent_budget[1]
        shift = min(1.0, max(0.0, (used - self.start) / (1.0 - self.start)))
        wc, wl, wq = wc + shift * (1.0 - wc), wl * (1.0 - shift), wq * (1.0 - shift)
        return (wc, wl, wq), f"{used:.0%} of budget spent, cost weight {wc:.2f}"

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        weights, why = self.shifted(req, features)
        return self.rank_with(weights, features, candidates, why)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        (wc, wl, wq), _ = self.shifted(req, features)
        t, costs, lats, quals = self.components(features, candidates)
        return {n: f"cost ${c:.5f}, latency {lt:.0f} ms, quality {q:.2f} (weights {wc:.2f}/{wl:.2f}/{wq:.2f})"
                for n, c, lt, q in zip(t.names, costs, lats, quals, strict=True)}


register_strategy("score", Score, validate=validate_score)
register_strategy("cheapest", Cheapest, validate=lambda o, n: parse_options(CheapestOptions, o) and None)
register_strategy("budget-aware", BudgetAware, validate=validate_budget)
