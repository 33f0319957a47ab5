"""Passive health per deployment, fed by every call's outcome: EWMA latency and time to first
token, success rate, in-flight count, and a short cool-down after consecutive failures.

Routing strategies read these numbers (fastest, least-busy); circuit breakers build on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

ALPHA = 0.2  # EWMA weight of the newest observation


@dataclass(slots=True)
class Health:
    failures: int = 0  # consecutive
    cooldown_until: float = 0.0
    inflight: int = 0
    ewma_latency_ms: float | None = None  # None until the first success
    ewma_ttft_ms: float | None = None
    success_rate: float = 1.0  # EWMA of 1 (success) / 0 (failure)
    requests: int = 0

    COOLDOWN_AFTER = 3
    COOLDOWN_S = 10.0

    def healthy(self, now: float) -> bool:
        return now >= self.cooldown_until


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + ALPHA * (new - old)


class HealthTracker:
    """Outcome counters for every deployment, keyed by deployment name."""

    def __init__(self, names: list[str]) -> None:
        self.by_name: dict[str, Health] = {n: Health() for n in names}

    def started(self, name: str) -> None:
        self.by_name[name].inflight += 1

    def finished(self, name: str) -> None:
        h = self.by_name[name]
        h.inflight = max(0, h.inflight - 1)

    def ok(self, name: str, latency_ms: float | None = None, ttft_ms: float | None = None) -> None:
        h = self.by_name[name]
        h.failures = 0
        h.requests += 1
        h.success_rate += ALPHA * (1.0 - h.success_rate)
        if latency_ms is not None:
            h.ewma_latency_ms = _ewma(h.ewma_latency_ms, latency_ms)
        if ttft_ms is not None:
            h.ewma_ttft_ms = _ewma(h.ewma_ttft_ms, ttft_ms)

    def failed(self, name: str) -> None:
        h = self.by_name[name]
        h.failures += 1
        h.requests += 1
        h.success_rate -= ALPHA * h.success_rate
        if h.failures >= h.COOLDOWN_AFTER:
            h.cooldown_until = time.monotonic() + h.COOLDOWN_S

    def healthy(self, name: str, now: float | None = None) -> bool:
        return self.by_name[name].healthy(time.monotonic() if now is None else now)
