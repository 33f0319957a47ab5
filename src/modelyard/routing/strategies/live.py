"""Strategies driven by live load: `fastest` (expected latency: observed EWMA, falling back to the
card's priors), `least-busy` (fewest requests in flight) and `usage` (most rate-limit headroom
left this minute, against each deployment's `rpm`/`tpm`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...types import ChatRequest, Scored
from ..candidates import est_latency_ms
from ..features import Features
from .base import Strategy, StrategyContext, StrategyTraits, register_strategy
from .util import Options, TieBreak, normalise_low, ordered, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment


class LiveOptions(Options):
    tie_break: TieBreak = "order"


def _validate(options: dict[str, Any], names: Any) -> None:
    parse_options(LiveOptions, options)


class _Live(Strategy):
    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        opts = parse_options(LiveOptions, options)
        self.health = ctx.health
        self.usage = ctx.usage
        self.rng = ctx.rng
        self.tie_break: TieBreak = "order" if ctx.deterministic else opts.tie_break


class Fastest(_Live):
    """Lowest expected time to the whole reply. A deployment with observed traffic is judged by its
    EWMA time to first token (or, without TTFT, its EWMA latency); one without, by its card."""

    name = "fastest"

    def latencies(self, features: Features, candidates: list[Deployment]) -> list[tuple[float, str]]:
        """(expected ms, where the figure comes from) per candidate."""
        out: list[tuple[float, str]] = []
        by_name = self.health.by_name if self.health is not None else {}
        for d in candidates:
            h = by_name.get(d.name)
            if h is not None and h.ewma_ttft_ms is None and h.ewma_latency_ms is not None:
                out.append((h.ewma_latency_ms, "observed latency EWMA"))
            else:
                src = "observed TTFT EWMA + card speed" if h is not None and h.ewma_ttft_ms is not None \
                    else "card priors"
                out.append((est_latency_ms(d, features, self.health), src))
        return out

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        if not candidates:
            return []
        lats = [lat for lat, _ in self.latencies(features, candidates)]
        return ordered([d.name for d in candidates], normalise_low(lats), "lowest expected latency",
                       tie_break=self.tie_break, rng=self.rng)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        return {d.name: f"expected {lat:.0f} ms ({src})"
                for d, (lat, src) in zip(candidates, self.latencies(features, candidates), strict=True)}


class LeastBusy(_Live):
    """Fewest requests in flight (the health tracker's count); ties keep group order."""

    name = "least-busy"
    traits = StrategyTraits(needs_task=False)

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        by_name = self.health.by_name if self.health is not None else {}
        inflight = [by_name[d.name].inflight if d.name in by_name else 0 for d in candidates]
        return ordered([d.name for d in candidates], [1.0 / (1 + n) for n in inflight],
                       [f"{n} in flight" for n in inflight], tie_break=self.tie_break, rng=self.rng)


class Usage(_Live):
    """Most headroom left this minute: min over rpm and tpm of (1 − used / limit). Deployments
    without limits have full headroom. The router charges each pick to its meter."""

    name = "usage"

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        scores: list[float] = []
        reasons: list[str] = []
        need = features.input_tokens + features.output_tokens
        for d in candidates:
            used_r, used_t = self.usage.used(d.name) if self.usage is not None else (0, 0)
            room = 1.0
            if d.rpm:
                room = min(room, 1.0 - (used_r + 1) / d.rpm)
            if d.tpm:
                room = min(room, 1.0 - (used_t + need) / d.tpm)
            scores.append(room)
            limits = f"rpm {used_r}/{d.rpm or '∞'}, tpm {used_t}/{d.tpm or '∞'}"
            reasons.append(f"headroom {max(room, 0.0):.0%} ({limits})")
        return ordered([d.name for d in candidates], scores, reasons, tie_break=self.tie_break, rng=self.rng)


register_strategy("fastest", Fastest, validate=_validate)
register_strategy("least-busy", LeastBusy, validate=_validate)
register_strategy("usage", Usage, validate=_validate)
