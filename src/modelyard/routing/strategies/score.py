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

from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ...types import ChatRequest, Scored
from ..candidates import est_cost
from ..features import TASKS, Features
from ..ranking import Front, Ranking, front_first
from .base import ConfigNames, Strategy, StrategyConfigError, StrategyContext, register_strategy
from .util import Options, TieBreak, normalise_low, order_by_score, ordered, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment
    from .score_columns import ScoreColumns

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


# Per deployment and task, resolved at load: (USD per input token, USD per output token, TTFT prior
# in ms, ms per output token, quality for the task)
_Row = tuple[float, float, float, float, float]
_QUALITY = itemgetter(4)


def _quality(dep: Deployment, overrides: dict[str, float]) -> dict[str, float]:
    """Quality for every task: config override, else the card's prior, else its general quality."""
    general = overrides.get("general", dep.card.quality_for("general"))
    return {t: overrides.get(t, dep.card.quality.get(t, general)) for t in TASKS}


def _rows(dep: Deployment, overrides: dict[str, float]) -> dict[str, _Row]:
    """A deployment's numbers for each task."""
    c = dep.card
    a, b, ttft, v = c.input_per_m / 1e6, c.output_per_m / 1e6, c.ttft_ms, 1000.0 / c.tokens_per_s
    return {t: (a, b, ttft, v, q) for t, q in _quality(dep, overrides).items()}


def _spread(values: list[float], weight: float, low_is_best: bool) -> tuple[float, float]:
    """(constant, coefficient) with weight·normalised(x) = constant + coefficient·x over `values`
    (min-max normalisation, 1 for the best, 0 for the worst; all 1 when every value is equal)."""
    ordered = sorted(values)  # (one sort of floats costs CPython less than min() and max() apart)
    return _span(ordered[0], ordered[-1], weight, low_is_best)


def _span(lo: float, hi: float, weight: float, low_is_best: bool) -> tuple[float, float]:
    """`_spread` of values whose lowest is `lo` and highest `hi`."""
    if hi <= lo:
        return weight, 0.0
    a = weight / (hi - lo)
    return (a * hi, -a) if low_is_best else (-a * lo, a)


# From this many candidates `order` sums with numpy: below, the loop costs less than numpy's ~20 calls
# (~28 candidates on the benchmark's box, bench/routing_bench.py).
NUMPY_FROM = 32


def _numpy_columns(score: Score) -> ScoreColumns | None:
    """The numpy form of `score.order`'s sums (score_columns.py), or None without numpy (imported
    when the first `score` strategy is built, not with the package: ~0.1 s)."""
    try:
        from .score_columns import ScoreColumns
    except ImportError:  # the scores are summed in the loop of `Score.order`
        return None
    return ScoreColumns(score.task_table, score.health)


class Score(Strategy):
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
        # task -> deployment -> its numbers, for every deployment of the config, resolved once
        self.rows: dict[str, dict[str, _Row]] = {t: {} for t in TASKS}
        for name, dep in ctx.deployments.items():
            for task, row in _rows(dep, opts.quality.get(name, {})).items():
                self.rows[task][name] = row
        self.columns = _numpy_columns(self)

    def weights_for(self, req: ChatRequest, f: Features) -> tuple[float, float, float]:
        wc, wl, wq = PRESETS[f.optimize_for] if f.optimize_for else self.weights
        wq *= max(0.0, 1.0 + self.gain * (2.0 * f.complexity - 1.0))
        t = wc + wl + wq
        return (wc / t, wl / t, wq / t) if t > 0 else (1 / 3, 1 / 3, 1 / 3)

    def weights_and_reason(self, req: ChatRequest, f: Features) -> tuple[tuple[float, float, float], str]:
        """The request's (cost, latency, quality) weights and the reason every candidate gets."""
        return self.weights_for(req, f), self.REASON

    def table(self, f: Features, candidates: Sequence[Deployment]) -> list[_Row]:
        """Each candidate's numbers for the request's task."""
        return self.task_table(f.task, candidates)

    def task_table(self, task: str, candidates: Sequence[Deployment]) -> list[_Row]:
        """Each candidate's numbers for `task`."""
        rows = self.rows.get(task) or self.rows["chat"]
        try:
            return [rows[d.name] for d in candidates]
        except KeyError:  # a deployment outside the config (a Router built without one)
            return [rows[d.name] if d.name in rows else _rows(d, {}).get(task, _rows(d, {})["chat"])
                    for d in candidates]

    def latencies(self, f: Features, candidates: list[Deployment], table: list[_Row]) -> list[float]:
        """Expected ms to the whole reply per candidate: time to first token (observed EWMA, else
        the card's prior) + the expected output at the card's speed."""
        fo, health = float(f.output_tokens), self.health  # (float × float: the interpreter's fast path)
        if health is None or not health.ttft_observed:  # no time to first token observed yet: the priors
            return [ttft + fo * v for _, _, ttft, v, _ in table]
        by_name = health.by_name
        lats = []
        for d, (_, _, ttft, v, _) in zip(candidates, table, strict=True):
            h = by_name.get(d.name)
            observed = h.ewma_ttft_ms if h is not None else None
            lats.append((ttft if observed is None else observed) + fo * v)
        return lats

    def components(self, f: Features, candidates: list[Deployment]) -> tuple[list[float], list[float], list[float]]:
        """(expected USD, expected ms to the whole reply, quality for the task) per candidate."""
        table = self.table(f, candidates)
        fi, fo = float(f.input_tokens), float(f.output_tokens)
        costs = [fi * a + fo * b for a, b, _, _, _ in table]
        return costs, self.latencies(f, candidates, table), list(map(_QUALITY, table))

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        return self.order(req, features, candidates).scored()

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> Ranking:
        return self._order(req, features, candidates, None)

    def order_front(self, req: ChatRequest, features: Features, candidates: list[Deployment],
                    front: Front) -> Ranking:
        return self._order(req, features, candidates, front)

    def _order(self, req: ChatRequest, features: Features, candidates: list[Deployment], front: Front | None
               ) -> Ranking:
        """wc·cost' + wl·latency' + wq·quality', each component min-max normalised over the
        candidates; each weighted component is written k + a·x, so a score is one sum per candidate.
        With `front`, its candidates first (`order_front`): with numpy, in the same sort."""
        (wc, wl, wq), reason = self.weights_and_reason(req, features)
        if not candidates:
            return Ranking(candidates, [], [], reason)
        if self.columns is not None and len(candidates) >= NUMPY_FROM:  # the same sums, as numpy operations
            cols = self.columns.columns(features.task, candidates)
            s = self.columns.scores(cols, float(features.input_tokens), float(features.output_tokens), (wc, wl, wq),
                                    _span)
            if self.tie_break == "order":
                return self.columns.ranking(cols, candidates, s, reason, front)
            scores = s.tolist()
        else:
            costs, lats, quals = self.components(features, candidates)
            kc, ac = _spread(costs, wc, low_is_best=True)
            kl, al = _spread(lats, wl, low_is_best=True)
            kq, aq = _spread(quals, wq, low_is_best=False)
            k = kc + kl + kq
            scores = [k + ac * c + al * lt + aq * q for c, lt, q in zip(costs, lats, quals, strict=True)]
        order = order_by_score(scores, self.tie_break, self.rng)
        return Ranking(candidates, order if front is None else front_first(order, front.flags), scores, reason)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        (wc, wl, wq), _ = self.weights_and_reason(req, features)
        costs, lats, quals = self.components(features, candidates)
        return {d.name: f"cost ${c:.5f}, latency {lt:.0f} ms, quality {q:.2f} (weights {wc:.2f}/{wl:.2f}/{wq:.2f})"
                for d, c, lt, q in zip(candidates, costs, lats, quals, strict=True)}


class CheapestOptions(Options):
    tie_break: TieBreak = "order"


class Cheapest(Strategy):
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
        assert isinstance(self.opts, BudgetOptions)
        self.start = self.opts.start
        self.hooks = ctx.hooks

    def shifted(self, req: ChatRequest, features: Features) -> tuple[tuple[float, float, float], str]:
        """The weights after the budget shift, and why."""
        wc, wl, wq = self.weights_for(req, features)
        hook = self.hooks.budget
        spent_budget = hook(features) if hook is not None else None
        if spent_budget is None or spent_budget[1] <= 0:
            return (wc, wl, wq), "no budget for this key/team: plain score"
        used = spent_budget[0] / spent_budget[1]
        shift = min(1.0, max(0.0, (used - self.start) / (1.0 - self.start)))
        wc, wl, wq = wc + shift * (1.0 - wc), wl * (1.0 - shift), wq * (1.0 - shift)
        return (wc, wl, wq), f"{used:.0%} of budget spent, cost weight {wc:.2f}"

    def weights_and_reason(self, req: ChatRequest, f: Features) -> tuple[tuple[float, float, float], str]:
        return self.shifted(req, f)


register_strategy("score", Score, validate=validate_score)
def validate_cheapest(options: dict[str, Any], names: ConfigNames) -> None:
    parse_options(CheapestOptions, options)


register_strategy("cheapest", Cheapest, validate=validate_cheapest)
register_strategy("budget-aware", BudgetAware, validate=validate_budget)
