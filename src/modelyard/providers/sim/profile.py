"""Per-deployment profiles of the simulated fleet: timing, failure rates, tier and quality,
computed once from the deployment's card and `sim` settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...deployment import Deployment

SIM_TIERS = ("sim/frontier", "sim/balanced", "sim/fast", "sim/local")
# The embedded fleet, as deployment configs (the default config and `make demo` use these).
SIM_FLEET: dict[str, dict[str, Any]] = {name: {"provider": "sim", "model": name} for name in SIM_TIERS}

# --- per-deployment profile (computed once, in prepare) ---------------------------------------

@dataclass(slots=True, frozen=True)
class _Profile:
    ttft_s: float
    tokens_per_s: float
    jitter: float
    failure_rate: float
    rate_limit_rate: float
    zero_latency: bool
    tier: str  # frontier | balanced | fast | local: how the deployment phrases its answers
    quality: float | None  # None: the card's prior for the task
    answers: tuple[tuple[str, str], ...]


def _tier_of(dep: Deployment) -> str:
    for tier in ("frontier", "balanced", "fast", "local"):
        if tier in dep.model:
            return tier
    q = dep.card.quality_for("general")
    return "frontier" if q >= 0.88 else "balanced" if q >= 0.78 else "fast" if q >= 0.65 else "local"


def _make_profile(dep: Deployment, zero_latency: bool) -> _Profile:
    s, card = dep.sim, dep.card
    return _Profile(
        ttft_s=max(0.0, (card.ttft_ms if s.ttft_ms is None else s.ttft_ms) / 1000.0),
        tokens_per_s=max(1e-3, card.tokens_per_s if s.tokens_per_s is None else s.tokens_per_s),
        jitter=min(max(s.jitter, 0.0), 0.95),
        failure_rate=s.failure_rate,
        rate_limit_rate=s.rate_limit_rate,
        zero_latency=zero_latency or s.zero_latency,
        tier=_tier_of(dep),
        quality=s.quality,
        answers=tuple(s.answers.items()),
    )
