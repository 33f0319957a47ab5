"""`healthiest`: a weighted draw whose weights fall as a deployment degrades, before its breaker opens.

    strategy: healthiest
    options: {power: 4, min_share: 0.05, latency: true}

Each candidate's share is `weight × success_rate^power × speed`, where success_rate is the health
tracker's EWMA of recent outcomes (1 = every recent call succeeded) and speed is the fastest observed
EWMA latency in the set divided by this deployment's (1 for the fastest; 1 for any deployment with no
observation yet). A deployment failing one call in ten keeps 0.9⁴ ≈ 66% of its weight; one in five, 41%;
one in three, 20%. The breaker still removes a deployment that fails outright; this moves traffic away earlier, in
proportion. `min_share` keeps a floor (as a fraction of the deployment's fair share) so a degraded
deployment still sees the few calls that show it has recovered: its success rate only moves when it
is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from ...types import ChatRequest, Scored
from ..features import Features
from .base import Strategy, StrategyContext, StrategyTraits, register_strategy
from .util import Options, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment


class HealthiestOptions(Options):
    power: float = Field(4.0, ge=0, le=10)  # how hard a falling success rate cuts the share
    min_share: float = Field(0.05, ge=0, le=1)  # floor, as a fraction of the deployment's fair share
    latency: bool = True  # also favour the faster deployments (observed EWMA latency)


def _validate(options: dict[str, Any], names: Any) -> None:
    parse_options(HealthiestOptions, options)


class Healthiest(Strategy):
    name = "healthiest"
    traits = StrategyTraits(needs_task=False, reads_features=False)

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        opts = parse_options(HealthiestOptions, options)
        self.power, self.min_share, self.latency = opts.power, opts.min_share, opts.latency
        self.health = ctx.health
        self.rng = ctx.rng
        self.deterministic = ctx.deterministic

    def shares(self, candidates: list[Deployment]) -> list[tuple[float, str]]:
        """(share of traffic, why) per candidate; the shares sum to 1."""
        by_name = self.health.by_name if self.health is not None else {}
        rates, lats = [], []
        for d in candidates:
            h = by_name.get(d.name)
            rates.append(h.success_rate if h is not None else 1.0)
            lats.append(h.ewma_latency_ms if h is not None and self.latency else None)
        seen = [x for x in lats if x]
        fastest = min(seen) if seen else None
        raw = []
        for d, rate, lat in zip(candidates, rates, lats, strict=True):
            speed = fastest / lat if fastest and lat else 1.0
            raw.append(d.weight * rate ** self.power * speed)
        fair = [d.weight for d in candidates]
        total_raw, total_fair = sum(raw), sum(fair) or 1.0
        out = []
        for r, f, rate, lat in zip(raw, fair, rates, lats, strict=True):
            share = r / total_raw if total_raw > 0 else f / total_fair
            share = max(share, self.min_share * f / total_fair)
            why = f"success {rate:.0%}" + (f", {lat:.0f} ms" if lat else "")
            out.append((share, why))
        norm = sum(s for s, _ in out) or 1.0
        return [(s / norm, f"{why} → {s / norm:.0%} of traffic") for s, why in out]

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        shares = self.shares(candidates)
        idx = list(range(len(candidates)))
        if self.deterministic:
            order = sorted(idx, key=lambda i: -shares[i][0])
        else:  # a weighted shuffle: each position drawn ∝ share among those left
            order, pool = [], idx
            while pool:
                total = sum(shares[i][0] for i in pool)
                x = self.rng.random() * total
                j = len(pool) - 1
                for k, i in enumerate(pool):
                    x -= shares[i][0]
                    if x < 0:
                        j = k
                        break
                order.append(pool.pop(j))
        return [Scored(candidates[i].name, shares[i][0], True, shares[i][1]) for i in order]


register_strategy("healthiest", Healthiest, validate=_validate)
