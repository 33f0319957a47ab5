"""Passive health per deployment, fed by every call's outcome (non-streamed, streamed, hedged and
active checks alike): EWMA latency and time to first token, recent latency samples for quantiles,
success rate, in-flight count, and the deployment's circuit breaker.

Routing strategies read these numbers (fastest, least-busy) and call `healthy()`, which asks the
breaker, so deployments whose circuit is open drop out of routing; hedging reads the quantiles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import ModelyardError
from .breaker import CLOSED, OPEN, BreakerRecord, CircuitBreaker, counts_against

ALPHA = 0.2  # EWMA weight of the newest observation
SAMPLES = 64  # latencies kept per deployment for quantiles


class Samples:
    """The last SAMPLES observations, for quantiles (sorted only when asked: hedging asks)."""

    __slots__ = ("i", "n", "values")

    def __init__(self) -> None:
        self.values = [0.0] * SAMPLES
        self.i = 0
        self.n = 0

    def add(self, v: float) -> None:
        self.values[self.i] = v
        self.i = (self.i + 1) % SAMPLES
        if self.n < SAMPLES:
            self.n += 1

    def quantile(self, q: float) -> float | None:
        if not self.n:
            return None
        ordered = sorted(self.values[: self.n])
        return ordered[min(self.n - 1, int(q * self.n))]


@dataclass(slots=True)
class Health:
    failures: int = 0  # consecutive failures that count against the deployment
    cooldown_until: float = 0.0  # while its circuit is open: when probes may start
    inflight: int = 0
    ewma_latency_ms: float | None = None  # None until the first success
    ewma_ttft_ms: float | None = None
    success_rate: float = 1.0  # EWMA of 1 (success) / 0 (failure)
    requests: int = 0
    circuit: str = CLOSED  # closed | open | half_open
    latency_samples: Samples = field(default_factory=Samples)  # non-streamed calls, ms
    ttft_samples: Samples = field(default_factory=Samples)  # streamed calls, ms

    def healthy(self, now: float) -> bool:
        return now >= self.cooldown_until


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + ALPHA * (new - old)


class HealthTracker:
    """Outcome counters for every deployment, keyed by deployment name, plus their breakers."""

    def __init__(self, names: list[str], breaker: CircuitBreaker | None = None) -> None:
        self.by_name: dict[str, Health] = {n: Health() for n in names}
        # How many deployments have an observed time to first token: while none has (no stream
        # served yet), strategies that weigh latency skip reading every record for one.
        self.ttft_observed = 0
        self.breaker = breaker if breaker is not None else CircuitBreaker(names=names)
        self.breaker.on_change = self._breaker_changed

    def _breaker_changed(self, name: str, r: BreakerRecord) -> None:
        h = self.by_name.get(name)
        if h is not None:
            h.circuit = r.state
            h.cooldown_until = r.until if r.state == OPEN else 0.0

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
            old = h.ewma_latency_ms
            h.ewma_latency_ms = latency_ms if old is None else old + ALPHA * (latency_ms - old)  # (_ewma, inline)
            h.latency_samples.add(latency_ms)
        if ttft_ms is not None:
            if h.ewma_ttft_ms is None:
                self.ttft_observed += 1
            h.ewma_ttft_ms = _ewma(h.ewma_ttft_ms, ttft_ms)
            h.ttft_samples.add(ttft_ms)
        self.breaker.success(name, time.monotonic())

    def failed(self, name: str, error: ModelyardError | None = None) -> None:
        """A failed call. Errors that are the request's fault (too long, refused by policy, bad
        parameters) are counted as requests but not against the deployment."""
        h = self.by_name[name]
        h.requests += 1
        if not counts_against(error):
            return
        h.failures += 1
        h.success_rate -= ALPHA * h.success_rate
        self.breaker.failure(name, time.monotonic(), h.failures)

    def healthy(self, name: str, now: float | None = None) -> bool:
        """Whether routing should offer this deployment: its circuit is closed, or cooled down
        enough to take a probe."""
        return self.breaker.available(name, time.monotonic() if now is None else now)

    def quantile(self, name: str, q: float, *, ttft: bool, min_samples: int = 1) -> float | None:
        """The q-quantile (ms) of recent time-to-first-token (`ttft`) or whole-call latency."""
        s = self.by_name[name].ttft_samples if ttft else self.by_name[name].latency_samples
        return s.quantile(q) if s.n >= min_samples else None
