"""The resilience part of the YAML config: retry policy, circuit breaker, hedging, health checks,
and the operator caps on what one request may ask for.

Kept here rather than in config.py so the knobs live next to the code that reads them; config.py
embeds these models (top-level `resilience:`, and per model group `retry:` / `hedge:`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ErrorClass = Literal["rate_limit", "unavailable", "timeout", "connection"]


_RETRIES: dict[ErrorClass, int] = {"rate_limit": 1, "unavailable": 2, "timeout": 1, "connection": 2}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrySettings(_Model):
    """How often and how patiently one request is retried.

    `max_attempts` bounds the upstream calls of one request across every deployment (the first call
    included), so a failing fleet can never turn one request into a retry storm. Another deployment
    is always tried before the same one again; a same-deployment retry waits a full-jitter
    exponential backoff, or the upstream's Retry-After when it sent one and it is at most
    `retry_after_max_s` (a longer one means "not soon": the error goes back to the caller instead).
    """

    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_base_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=5.0, ge=0)
    retry_after_max_s: float = Field(default=10.0, ge=0)
    # Retries on the same deployment, per error class, once the other deployments are used up.
    retries: dict[ErrorClass, int] = Field(default_factory=lambda: dict(_RETRIES))


class BreakerSettings(_Model):
    """A per-deployment circuit breaker: open after `consecutive_failures` failures in a row, or
    when at least `failure_rate` of the last `window_s` seconds' calls failed (given
    `min_requests` calls); half-open after `cooldown_s` (doubling on each failed probe up to
    `max_cooldown_s`), when `half_open_probes` calls may test it; they must all succeed to close it."""

    enabled: bool = True
    consecutive_failures: int = Field(default=3, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    min_requests: int = Field(default=20, ge=1)
    window_s: float = Field(default=30.0, gt=0)
    cooldown_s: float = Field(default=10.0, gt=0)
    max_cooldown_s: float = Field(default=120.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)


class HedgeSettings(_Model):
    """Hedged requests: if the first deployment has not produced its first token (its whole answer,
    for non-streamed calls) after its observed `quantile` latency, send the request to the next
    candidate too and keep whichever answers first. `budget_pct` caps the extra load: at most that
    many hedges per 100 hedge-mode requests (plus a burst of `burst`)."""

    quantile: float = Field(default=0.9, gt=0, lt=1)
    delay_s: float | None = Field(default=None, ge=0)  # a fixed delay instead of the observed quantile
    initial_delay_s: float = Field(default=1.0, ge=0)  # until `min_samples` latencies were observed
    min_samples: int = Field(default=10, ge=1)
    min_delay_s: float = Field(default=0.02, ge=0)
    max_delay_s: float = Field(default=10.0, ge=0)
    budget_pct: float = Field(default=10.0, ge=0, le=100)
    burst: float = Field(default=2.0, ge=1)


class HealthCheckSettings(_Model):
    """Active health checks, for deployments marked `health_check: true` (off by default): a tiny
    request every `interval_s`; its outcome feeds health and the breaker like any call's."""

    interval_s: float = Field(default=30.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    prompt: str = "ping"


class CapsSettings(_Model):
    """Operator caps on what one request may ask for. A request over a cap is refused with a 400
    naming the field and the cap; the route's own configured settings are not capped."""

    max_attempts: int = Field(default=5, ge=1, le=20)  # per-request `max_attempts` override
    max_timeout_s: float = Field(default=600.0, gt=0)  # per-request `timeout_s` override
    max_calls: int = Field(default=10, ge=1)  # upstream sub-calls of one race/all/vote/judge/fuse request


class ResilienceSettings(_Model):
    """Defaults for every route; model groups may override `retry`, `timeout_s` and `hedge`."""

    timeout_s: float = Field(default=600.0, gt=0)  # the per-request deadline: bounds every attempt and wait
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    hedge: HedgeSettings = HedgeSettings()  # used by groups/requests in hedge mode
    health_checks: HealthCheckSettings = HealthCheckSettings()
    caps: CapsSettings = CapsSettings()  # bounds on per-request overrides and mode fan-out
