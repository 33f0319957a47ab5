"""Passive health per deployment, fed by every call's outcome.

Deliberately minimal for now: consecutive failures put a deployment in a short cool-down so
routing tries it last. Circuit breakers, EWMA latency and in-flight counts extend this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class Health:
    failures: int = 0  # consecutive
    cooldown_until: float = 0.0

    COOLDOWN_AFTER = 3
    COOLDOWN_S = 10.0

    def healthy(self, now: float) -> bool:
        return now >= self.cooldown_until


class HealthTracker:
    """Outcome counters for every deployment, keyed by deployment name."""

    def __init__(self, names: list[str]) -> None:
        self.by_name: dict[str, Health] = {n: Health() for n in names}

    def ok(self, name: str, latency_ms: float | None = None) -> None:
        self.by_name[name].failures = 0

    def failed(self, name: str) -> None:
        h = self.by_name[name]
        h.failures += 1
        if h.failures >= h.COOLDOWN_AFTER:
            h.cooldown_until = time.monotonic() + h.COOLDOWN_S

    def healthy(self, name: str, now: float | None = None) -> bool:
        return self.by_name[name].healthy(time.monotonic() if now is None else now)
