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

import math
from collections.abc import Callable
from operator import add, attrgetter, countOf
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ...types import ChatRequest, Scored
from ..candidates import est_cost
from ..features import TASKS, Features
from ..ranking import Ranking
from .base import ConfigNames, StrategyConfigError, StrategyContext, register_strategy
from .util import Options, TieBreak, normalise_high, normalise_low, ordered, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment
    from ...resilience.health import Health, HealthTracker

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
    quality for every task (card prior, then config overrides), raw and normalised over the list."""

    __slots__ = ("_rows", "cheapest", "cost_ends", "dearest", "deps", "distinct", "fastest", "healths", "ins",
                 "inv_tps", "names", "observed", "outs", "qnorm", "quality", "scorers", "slowest",
                 "ttft")

    def __init__(self, deps: list[Deployment], quality: dict[str, dict[str, float]]) -> None:
        self.deps = tuple(deps)
        self.names = [d.name for d in deps]
        self.ins = [d.card.input_per_m / 1e6 for d in deps]
        self.outs = [d.card.output_per_m / 1e6 for d in deps]
        self.ttft = [d.card.ttft_ms for d in deps]
        self.inv_tps = [1000.0 / d.card.tokens_per_s for d in deps]
        self.quality = {t: [quality[d.name][t] for d in deps] for t in TASKS}
        self.qnorm = {t: normalise_high(q) if q else [] for t, q in self.quality.items()}
        self.healths: list[Health] | None = None  # the tracker's live objects, once all are known
        self._rows: dict[tuple[str, int], tuple[list[float] | None, list[tuple[float, ...]]]] = {}
        # (task, bonus id) -> (bonus, distinct rows, position -> row, boosted rows), see `distinct_entry`
        self.distinct: dict[tuple[str, int], _Distinct] = {}
        self.scorers: dict[tuple[str, int], tuple[list[float] | None, _Scorer]] = {}  # see `scorer`
        self.observed: dict[tuple[str, int], tuple[list[float] | None, _Observed]] = {}  # see `observed_scorer`
        # Where a request's cheapest and dearest candidates can be: fi·in + fo·out (fi, fo ≥ 0) is
        # highest on a price pair no other pair beats in both prices, lowest on one no other undercuts
        # in both — usually one or two deployments, so min/max need not scan the whole list.
        prices = list(zip(self.ins, self.outs, strict=True))
        self.dearest = _front(prices, 1.0)
        self.cheapest = _front(prices, -1.0)
        priors = list(zip(self.ttft, self.inv_tps, strict=True))  # ttft + fo/speed: the same, while no
        self.slowest = _front(priors, 1.0)  # deployment has observed latencies
        self.fastest = _front(priors, -1.0)
        self.cost_ends = _ends(self.cheapest, self.dearest)

    def rows(self, task: str, bonus: list[float] | None) -> list[tuple[float, ...]]:
        """(input price, output price, TTFT prior, ms per output token, normalised quality for `task`
        [, bonus]) per candidate, zipped once per task and bonus list and kept: iterating ready-made
        tuples costs ~40% less than zipping six lists per request."""
        key = (task, id(bonus))
        hit = self._rows.get(key)
        if hit is not None and hit[0] is bonus:  # the entry holds `bonus`, so its id is not reused
            return hit[1]
        cols = [self.ins, self.outs, self.ttft, self.inv_tps, self.qnorm[task]]
        rows = list(zip(*cols, strict=True) if bonus is None else zip(*cols, bonus, strict=True))
        if len(self._rows) < _ROW_CACHE:  # bonus lists are per rule (few); a full cache stops growing
            self._rows[key] = (bonus, rows)
        return rows

    def distinct_rows(self, task: str, bonus: list[float] | None = None
                      ) -> tuple[list[tuple[float, ...]], list[int] | None]:
        """`rows(task, None)` without repeats, and each position's index into them — None (and all
        the rows) when too few repeat for scoring them once to pay and there is no `bonus`.
        Deployments sharing a card (one model in several regions or under several keys) have the
        same numbers, so the same score: scored once, then copied back to each position, the same
        doubles. With a `bonus`, the index also points past the rows, at `distinct_entry`'s boosted ones."""
        hit = self.distinct_entry(task, bonus)
        return hit[1], hit[2]

    def distinct_entry(self, task: str, bonus: list[float] | None) -> _Distinct:
        """(bonus, distinct rows, index, boosted, adds): a candidate's score is the score of row
        index[pos] of the distinct rows followed by the boosted ones, row R + i (R rows) being row
        boosted[i] + adds[i] — a distinct (row, bonus) pair: the bonus is the sum's last term, so
        adding it to the row's score gives the same double as scoring the row with it."""
        key = (task, id(bonus))
        hit = self.distinct.get(key)
        if hit is not None and hit[0] is bonus:  # (kept with its bonus list, as `rows`)
            return hit
        rows = self.rows(task, None)
        seen: dict[tuple[float, ...], int] = {}
        index = [seen.setdefault(r, len(seen)) for r in rows]
        if bonus is None:
            hit = (None, list(seen), index, None, None) if len(seen) < 0.85 * len(rows) else \
                (None, rows, None, None, None)
        else:
            pairs: dict[tuple[int, float], int] = {}
            for pos, x in enumerate(bonus):
                if x != 0.0:  # (x + 0.0 is x: a score is never −0.0, its last term wq·q̂ is ≥ +0.0)
                    index[pos] = pairs.setdefault((index[pos], x), len(seen) + len(pairs))
            hit = (bonus, list(seen), index, [j for j, _ in pairs], [x for _, x in pairs])
        if len(self.distinct) < _ROW_CACHE:
            self.distinct[key] = hit
        return hit

    def scorer(self, task: str, bonus: list[float] | None) -> tuple[list[float] | None, _Scorer]:
        """(bonus, the function of the request's coefficients (k, ca, cb, al, cv, wq) that gives every
        candidate's score, by position, for `task` and `bonus`): `distinct_entry`'s rows with their
        numbers written into its code (see `_scorer`), made once per task and bonus list and kept."""
        key = (task, id(bonus))
        hit = self.scorers.get(key)
        if hit is not None and hit[0] is bonus:  # (kept with its bonus list, as `rows`)
            return hit
        _, rows, index, boosted, adds = self.distinct_entry(task, bonus)
        keep = len(self.scorers) < _ROW_CACHE  # (a function not kept is not worth writing out)
        hit = (bonus, _scorer(self, rows, index, boosted, adds, inline=keep))
        if keep:
            self.scorers[key] = hit
        return hit

    def observed_scorer(self, task: str, bonus: list[float] | None) -> tuple[list[float] | None, _Observed]:
        """`scorer` for the times to first token of the request (some observed): (bonus, the function of
        (fi, fo, wc, wl, wq, ttft by position) that gives every candidate's score, see `_observed`)."""
        key = (task, id(bonus))
        hit = self.observed.get(key)
        if hit is not None and hit[0] is bonus:
            return hit
        keep = len(self.observed) < _ROW_CACHE  # (a function not kept is not worth writing out)
        hit = (bonus, _observed(self, self.rows(task, bonus), inline=keep))
        if keep:
            self.observed[key] = hit
        return hit

    def ttft_now(self, health: HealthTracker | None) -> list[float]:
        """Time to first token per deployment: the observed EWMA where there is one, else the prior."""
        if health is None or not health.ttft_observed:
            return self.ttft
        hs = self.healths
        if hs is None:
            found = [health.by_name.get(n) for n in self.names]
            if any(h is None for h in found):  # not tracked (a Router built without config)
                return [p if h is None or h.ewma_ttft_ms is None else h.ewma_ttft_ms
                        for p, h in zip(self.ttft, found, strict=True)]
            hs = self.healths = found  # type: ignore[assignment]
        missing = countOf(map(_EWMA_TTFT, hs), None)
        if missing == len(hs):  # nothing observed yet: no list built
            return self.ttft
        observed = list(map(_EWMA_TTFT, hs))
        if not missing:  # every deployment observed (the steady state)
            return observed
        return [p if o is None else o for p, o in zip(self.ttft, observed, strict=True)]


# (bonus, distinct rows, position -> row | None, boosted row -> its row | None, and -> its bonus | None)
_Distinct = tuple[list[float] | None, list[tuple[float, ...]], list[int] | None, list[int] | None,
                  list[float] | None]
_Scorer = Callable[[int, int, float, float, float], list[float]]  # (fi, fo, wc, wl, wq) -> scores by position
_INLINE_ROWS = 2048  # scorers of up to this many distinct rows have the table's numbers in their code


def _cost_terms(t: _Table, fi: int, fo: int, wc: float) -> tuple[float, float, float]:
    """(K's cost part, ca, cb): the cost component wc·(hi − c)/span as K − ca·in − cb·out, its
    extremes on the price fronts."""
    e = t.cost_ends
    if e is not None:  # fronts of one or two price pairs (usual): _lowest/_highest inline
        x, y = fi * e[0] + fo * e[1], fi * e[2] + fo * e[3]
        lo = x if x <= y else y
        x, y = fi * e[4] + fo * e[5], fi * e[6] + fo * e[7]
        hi = x if x >= y else y
    else:
        lo, hi = _lowest(t.cheapest, fi, fo), _highest(t.dearest, fi, fo)
    ac = wc / (hi - lo) if hi > lo else 0.0
    return (ac * hi if hi > lo else wc), ac * fi, ac * fo  # (one product per term: the same sum up to rounding)


def _scorer(t: _Table, rows: list[tuple[float, ...]], index: list[int] | None, boosted: list[int] | None,
            adds: list[float] | None, inline: bool = True) -> _Scorer:
    """Every candidate's score, by position, from the request's tokens and weights, when no latency
    is observed: the cost and latency extremes on the table's fronts, K − ca·a − cb·b − al·ttft −
    cv·v + wq·q̂ per distinct row, the boosted rows' bonus added, copied to the positions. The
    table's numbers are written into its code as constants (their repr reads back as the same
    double): no loop, tuple unpacking, subscripts or copy pass — the same operations in the same
    order, so the same doubles as the plain loop it replaces (kept for numbers a literal cannot
    spell, inf or nan, for fronts of more than two points, and when not `inline`: one used once)."""
    fronts = (t.cheapest, t.dearest, t.fastest, t.slowest)
    numbers = [x for r in rows for x in r] + list(adds or ()) + [x for f in fronts for p in f for x in p]
    if not inline or len(rows) > _INLINE_ROWS or any(len(f) > 2 for f in fronts) or \
            not all(type(x) in (float, int) and math.isfinite(x) for x in numbers):
        def score(fi: int, fo: int, wc: float, wl: float, wq: float) -> list[float]:
            k, ca, cb = _cost_terms(t, fi, fo, wc)
            lo, hi = _lowest(t.fastest, 1.0, fo), _highest(t.slowest, 1.0, fo)
            al = wl / (hi - lo) if hi > lo else 0.0
            k += al * hi if hi > lo else wl
            cv = al * fo
            scores = [k - ca * a - cb * b - al * tt - cv * v + wq * q for a, b, tt, v, q in rows]
            if boosted:
                scores += map(add, map(scores.__getitem__, boosted), adds)  # type: ignore[arg-type]
            return scores if index is None else list(map(scores.__getitem__, index))
        return score
    lines = ["def score(fi, fo, wc, wl, wq):"]
    lines += _extreme("lo", [f"fi * {a!r} + fo * {b!r}" for a, b in t.cheapest], "<=")
    lines += _extreme("hi", [f"fi * {a!r} + fo * {b!r}" for a, b in t.dearest], ">=")
    lines += ["    ac = wc / (hi - lo) if hi > lo else 0.0", "    k = ac * hi if hi > lo else wc",
              "    ca = ac * fi", "    cb = ac * fo"]
    # (1.0 · ttft is ttft: the same doubles as _lowest(front, 1.0, fo))
    lines += _extreme("lo", [f"{a!r} + fo * {b!r}" for a, b in t.fastest], "<=")
    lines += _extreme("hi", [f"{a!r} + fo * {b!r}" for a, b in t.slowest], ">=")
    lines += ["    al = wl / (hi - lo) if hi > lo else 0.0", "    k += al * hi if hi > lo else wl", "    cv = al * fo"]
    lines += [f"    s{i} = k - ca * {a!r} - cb * {b!r} - al * {tt!r} - cv * {v!r} + wq * {q!r}"
              for i, (a, b, tt, v, q) in enumerate(rows)]
    lines += [f"    s{len(rows) + i} = s{j} + {x!r}" for i, (j, x) in enumerate(zip(boosted or (), adds or (),
                                                                                   strict=True))]
    lines.append(f"    return [{', '.join(f's{i}' for i in (index if index is not None else range(len(rows))))}]")
    names: dict[str, Any] = {}
    exec("\n".join(lines), names)  # (the text holds only local names and float / int literals)
    return names["score"]  # type: ignore[no-any-return]


_Observed = Callable[[int, int, float, float, float, list[float]], list[float]]


def _observed(t: _Table, rows: list[tuple[float, ...]], inline: bool = True) -> _Observed:
    """Every candidate's score, by position, from the request's tokens and weights and each
    candidate's time to first token (observed or prior): the cost extremes on the price fronts,
    each latency ttft + fo·v and their extremes, K − ca·a − cb·b − al·latency + wq·q̂ [+ bonus]. As
    `_scorer`, the table's numbers written into the code (the same operations in the same order:
    the same doubles); the loops for numbers no literal spells, price fronts of three points, or
    when not `inline`."""
    numbers = [x for r in rows for x in r] + [x for f in (t.cheapest, t.dearest) for p in f for x in p]
    if not inline or len(rows) > _INLINE_ROWS or len(t.cheapest) > 2 or len(t.dearest) > 2 or \
            not all(type(x) in (float, int) and math.isfinite(x) for x in numbers):
        def score(fi: int, fo: int, wc: float, wl: float, wq: float, ttft: list[float]) -> list[float]:
            k, ca, cb = _cost_terms(t, fi, fo, wc)
            lats = [tt + fo * v for tt, v in zip(ttft, t.inv_tps, strict=True)]
            lo, hi = min(lats), max(lats)
            al = wl / (hi - lo) if hi > lo else 0.0
            k += al * hi if hi > lo else wl
            if len(rows[0]) == 5:
                return [k - ca * a - cb * b - al * lt + wq * q for (a, b, _, _, q), lt in zip(rows, lats, strict=True)]
            return [k - ca * a - cb * b - al * lt + wq * q + x
                    for (a, b, _, _, q, x), lt in zip(rows, lats, strict=True)]
        return score
    n = len(rows)
    lines = ["def score(fi, fo, wc, wl, wq, ttft):"]
    lines += _extreme("lo", [f"fi * {a!r} + fo * {b!r}" for a, b in t.cheapest], "<=")
    lines += _extreme("hi", [f"fi * {a!r} + fo * {b!r}" for a, b in t.dearest], ">=")
    lines += ["    ac = wc / (hi - lo) if hi > lo else 0.0", "    k = ac * hi if hi > lo else wc",
              "    ca = ac * fi", "    cb = ac * fo", f"    {''.join(f't{i}, ' for i in range(n))}= ttft"]
    lines += [f"    l{i} = t{i} + fo * {r[3]!r}" for i, r in enumerate(rows)]
    lats = ", ".join(f"l{i}" for i in range(n))
    lines += [f"    lo = min([{lats}])", f"    hi = max([{lats}])", "    al = wl / (hi - lo) if hi > lo else 0.0",
              "    k += al * hi if hi > lo else wl"]
    terms = [f"k - ca * {r[0]!r} - cb * {r[1]!r} - al * l{i} + wq * {r[4]!r}" + (f" + {r[5]!r}" if len(r) > 5 else "")
             for i, r in enumerate(rows)]
    lines.append(f"    return [{', '.join(terms)}]")
    names: dict[str, Any] = {}
    exec("\n".join(lines), names)  # (the text holds only local names and float / int literals)
    return names["score"]  # type: ignore[no-any-return]


def _extreme(name: str, terms: list[str], keep: str) -> list[str]:
    """`name` = the lowest (keep "<=") or highest (">=") of one or two terms, as `_lowest` /
    `_highest` find it (the first of equal values)."""
    if len(terms) == 1:
        return [f"    {name} = {terms[0]}"]
    return [f"    x = {terms[0]}", f"    y = {terms[1]}", f"    {name} = x if x {keep} y else y"]


_EWMA_TTFT = attrgetter("ewma_ttft_ms")
_WEIGHTS_MEMO = 8192  # (optimize_for, complexity) keys of Score._weights: 5 × 1001 in practice
_NO_REQUEST = ChatRequest(model="", messages=[])  # weights_for reads only the features
# (task, bonus list) row tables and scoring functions kept per candidate table, each kind up to this
# many: 8 rules × 11 tasks is 99 (at 50 deployments ~0.5 MB of rows, ~1 MB of functions for priors and
# ~2 MB for observed latencies); past the cap, rows are zipped per request and the functions loop
_ROW_CACHE = 256


def _front(points: list[tuple[float, float]], sign: float) -> list[tuple[float, float]]:
    """The distinct points that no other point dominates (sign 1: is ≥ in both coordinates and
    > in one; sign −1: ≤ and <)."""
    out: list[tuple[float, float]] = []
    for a, b in points:
        if (a, b) not in out and not any(sign * (c - a) >= 0 and sign * (d - b) >= 0 and (c, d) != (a, b)
                                         for c, d in points):
            out.append((a, b))
    return out


def _ends(low: list[tuple[float, float]], high: list[tuple[float, float]]) -> tuple[float, ...] | None:
    """Two (a, b) points of the lowest front, then two of the highest, when each front has one or
    two points (one is given twice): min / max of base·a + x·b over them, inline, is `_lowest` /
    `_highest`'s double."""
    if not 0 < len(low) <= 2 or not 0 < len(high) <= 2:
        return None
    return (*low[0], *low[-1], *high[0], *high[-1])


def _lowest(front: list[tuple[float, float]], base: float, x: float) -> float:
    """min of base·a + x·b over the front's points (usually one)."""
    if len(front) == 1:
        a, b = front[0]
        return base * a + x * b
    return min([base * a + x * b for a, b in front])


def _highest(front: list[tuple[float, float]], base: float, x: float) -> float:
    if len(front) == 1:
        a, b = front[0]
        return base * a + x * b
    return max([base * a + x * b for a, b in front])


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
        self._whole: list[Deployment] | None = None
        # score's own weights: `order` reads them from `_weights` (see `_weights_for`)
        self._plain = type(self).weights_and_reason is Score.weights_and_reason and \
            type(self).weights_for is Score.weights_for
        self._weights: dict[tuple[str | None, float], tuple[float, float, float]] = {}

    def weights_for(self, req: ChatRequest, f: Features) -> tuple[float, float, float]:
        wc, wl, wq = PRESETS[f.optimize_for] if f.optimize_for else self.weights
        wq *= max(0.0, 1.0 + self.gain * (2.0 * f.complexity - 1.0))
        t = wc + wl + wq
        return (wc / t, wl / t, wq / t) if t > 0 else (1 / 3, 1 / 3, 1 / 3)

    def _weights_for(self, f: Features) -> tuple[float, float, float]:
        """`weights_for`, kept by (optimize_for, complexity) — all it reads of the request — for
        `order`: a few thousand keys at most (complexity has three decimals), bounded anyway."""
        w = self.weights_for(_NO_REQUEST, f)
        memo = self._weights
        if len(memo) >= _WEIGHTS_MEMO:
            memo.clear()
        memo[(f.optimize_for, f.complexity)] = w
        return w

    def _table_for(self, candidates: list[Deployment]) -> _Table:
        t = self.table
        if candidates is self._whole and len(candidates) == len(t.deps):
            return t  # the list last found to be the whole group (the router's, which nothing mutates)
        if len(candidates) == len(t.deps) and tuple(candidates) == t.deps:
            self._whole = candidates
            return t
        for d in candidates:  # deployments outside the config (a Router built without config)
            if d.name not in self.quality:
                general = d.card.quality_for("general")
                self.quality[d.name] = {k: d.card.quality.get(k, general) for k in TASKS}
        return _Table(candidates, self.quality)

    def weights_and_reason(self, req: ChatRequest, f: Features) -> tuple[tuple[float, float, float], str]:
        """The request's (cost, latency, quality) weights and the reason every candidate gets."""
        return self.weights_for(req, f), self.REASON

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        return self.order(req, features, candidates).scored()

    takes_bonus = True  # `order` can add a per-candidate bonus before sorting (rules: targets first)

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment],
              bonus: list[float] | None = None) -> Ranking:
        """`rank` without building the per-candidate entries (see ranking.py). `bonus` (by position)
        is added to the scores before sorting, and stays in them."""
        if self._plain:  # (score's own weights: looked up, worked out once per hint and complexity)
            weights = self._weights.get((features.optimize_for, features.complexity))
            if weights is None:
                weights = self._weights_for(features)
            reason = self.REASON
        else:
            weights, reason = self.weights_and_reason(req, features)
        t = self.table
        if candidates is not self._whole or len(candidates) != len(t.deps):
            t = self._table_for(candidates)
        n = len(t.names)
        if n == 0:
            return Ranking(t.deps, [], [], reason)
        wc, wl, wq = weights
        fi, fo = features.input_tokens, features.output_tokens
        # wc·(hi−c)/span + wl·(hi−l)/span + wq·q̂, folded: K − ac·c − al·l + wq·q̂ (a component with
        # no spread is 1 for every candidate); c = fi·in + fo·out and l = ttft + fo/speed in place
        health = self.health
        if health is None or not health.ttft_observed or (ttft := t.ttft_now(health)) is t.ttft:
            # no observed latencies: the extremes are on the priors' fronts, and the whole sum one
            # function of the table's numbers for the task and bonus (see `_scorer`)
            hit = t.scorers.get((features.task, id(bonus)))  # (`t.scorer`'s cache, read here)
            if hit is None or hit[0] is not bonus:
                hit = t.scorer(features.task, bonus)
            scores = hit[1](fi, fo, wc, wl, wq)
        else:  # observed TTFTs (the steady state): latencies first, for their extremes
            hit = t.observed.get((features.task, id(bonus)))  # (`t.observed_scorer`'s cache, read here)
            if hit is None or hit[0] is not bonus:
                hit = t.observed_scorer(features.task, bonus)
            scores = hit[1](fi, fo, wc, wl, wq, ttft)
        if self.tie_break == "random" and n > 1:
            keys = [self.rng.random() for _ in range(n)]
            idx = sorted(range(n), key=lambda i: (-scores[i], keys[i]))
        else:
            idx = sorted(range(n), key=scores.__getitem__, reverse=True)  # stable: ties keep group order
        r = Ranking(t.deps, idx, scores, reason)
        r._deployments = list(map(t.deps.__getitem__, idx))  # the chain, read by every caller (`deployments`)
        return r

    def components(self, f: Features, candidates: list[Deployment]) -> tuple[_Table, list[float], list[float],
                                                                             list[float]]:
        """(table, expected USD, expected ms, quality) per candidate."""
        t = self._table_for(candidates)
        fi, fo = f.input_tokens, f.output_tokens
        costs = [fi * a + fo * b for a, b in zip(t.ins, t.outs, strict=True)]
        lats = [a + fo * k for a, k in zip(t.ttft_now(self.health), t.inv_tps, strict=True)]
        return t, costs, lats, t.quality[f.task]

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

    def weights_and_reason(self, req: ChatRequest, f: Features) -> tuple[tuple[float, float, float], str]:
        return self.shifted(req, f)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        (wc, wl, wq), _ = self.shifted(req, features)
        t, costs, lats, quals = self.components(features, candidates)
        return {n: f"cost ${c:.5f}, latency {lt:.0f} ms, quality {q:.2f} (weights {wc:.2f}/{wl:.2f}/{wq:.2f})"
                for n, c, lt, q in zip(t.names, costs, lats, quals, strict=True)}


register_strategy("score", Score, validate=validate_score)
register_strategy("cheapest", Cheapest, validate=lambda o, n: parse_options(CheapestOptions, o) and None)
register_strategy("budget-aware", BudgetAware, validate=validate_budget)
