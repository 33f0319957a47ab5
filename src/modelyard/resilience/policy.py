"""Everything resilience decides at config load, and the small per-request view of it.

`Resilience` is built once by the gateway: the state store, breakers, health tracker, per-deployment
timeouts, and one `Policy` per route name (retry settings, deadline, typed fallback chains, hedge
settings). `Resilience.policy(route, req)` returns that prebuilt policy, or, only when the request
carries overrides in `req.metadata` (`timeout_s`, `max_attempts`, `fallbacks`,
`context_window_fallbacks`, `content_policy_fallbacks`, `mode`), a copy with them applied; the
numeric overrides are bounded by the operator's `resilience.caps` (a 400 names the field and cap).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest
from ..state import close_state, open_state, start_state
from .breaker import CircuitBreaker
from .checks import HealthChecks
from .health import HealthTracker
from .settings import HedgeSettings, ResilienceSettings, RetrySettings

if TYPE_CHECKING:
    from ..config import Config
    from ..deployment import Deployment
    from ..types import ChatRequest

_OVERRIDES = frozenset(("timeout_s", "max_attempts", "fallbacks", "context_window_fallbacks",
                        "content_policy_fallbacks", "mode"))


@dataclass(slots=True, frozen=True)
class DeploymentTimeouts:
    """Per deployment: connect is the provider's (its HTTP client); these three are enforced in execution."""

    ttft_s: float | None  # streams: until the first chunk
    idle_s: float | None  # streams: between chunks
    total_s: float  # one call, start to end
    provider_enforced: bool = False  # the adapter's HTTP client enforces total_s itself


class HedgeBudget:
    """Caps hedging's extra load: each hedge-mode request earns `pct`/100 of a hedge, a hedge spends
    one, and at most `burst` can be saved up. Per process; approximate under concurrency by design."""

    __slots__ = ("burst", "ratio", "tokens")

    def __init__(self, pct: float, burst: float) -> None:
        self.ratio = pct / 100.0
        self.burst = burst
        self.tokens = 0.0

    def earn(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class Policy:
    """How one route's requests are executed when things fail."""

    route: str
    retry: RetrySettings
    timeout_s: float  # the request deadline
    timeouts: dict[str, DeploymentTimeouts]
    rate_limit_fallbacks: tuple[Deployment, ...] = ()
    context_window_fallbacks: tuple[Deployment, ...] = ()
    content_policy_fallbacks: tuple[Deployment, ...] = ()
    hedge: HedgeSettings | None = None  # set: hedge mode
    budget: HedgeBudget | None = None
    # A per-request `fallbacks` list replaces the route's configured general fallbacks (`drop`).
    fallbacks: tuple[Deployment, ...] | None = None
    drop: frozenset[str] = frozenset()


def default_policy() -> Policy:
    """For callers that pass none (tests, library use without a gateway)."""
    s = ResilienceSettings()
    return Policy(route="", retry=s.retry, timeout_s=s.timeout_s, timeouts={})


class Resilience:
    """The gateway's resilience machinery, built from config once."""

    def __init__(self, config: Config, deployments: dict[str, Deployment]) -> None:
        s = self.settings = config.resilience
        names = list(deployments)
        self.store = open_state(config.state)  # memory, or Redis shared by every replica (state/)
        self.breaker = CircuitBreaker(s.breaker, self.store, names)
        self.health = HealthTracker(names, self.breaker)
        self.timeouts = {n: DeploymentTimeouts(dc.ttft_timeout_s, dc.idle_timeout_s, dc.timeout_s,
                                               _enforces_total(deployments[n]))
                         for n, dc in config.deployments.items()}
        self._targets: dict[str, tuple[Deployment, ...]] = {n: (d,) for n, d in deployments.items()}
        for gname, g in config.model_groups.items():
            self._targets[gname] = tuple(deployments[d] for d in g.deployments)
        self.policies: dict[str, Policy] = {}
        for n in deployments:
            self.policies[n] = Policy(route=n, retry=s.retry, timeout_s=s.timeout_s, timeouts=self.timeouts,
                                      budget=HedgeBudget(s.hedge.budget_pct, s.hedge.burst))
        for gname, g in config.model_groups.items():
            hedge = _merge(s.hedge, g.hedge)
            own = set(g.deployments)
            self.policies[gname] = Policy(
                route=gname, retry=_merge(s.retry, g.retry), timeout_s=g.timeout_s or s.timeout_s,
                timeouts=self.timeouts,
                rate_limit_fallbacks=self._expand(g.rate_limit_fallbacks),
                context_window_fallbacks=self._expand(g.context_window_fallbacks),
                content_policy_fallbacks=self._expand(g.content_policy_fallbacks),
                hedge=hedge if g.hedge is not None or getattr(g, "mode", None) == "hedge" else None,
                budget=HedgeBudget(hedge.budget_pct, hedge.burst),
                drop=frozenset(d.name for d in self._expand(g.fallbacks) if d.name not in own),
            )
        checked = [deployments[n] for n, dc in config.deployments.items() if dc.health_check]
        self.checks = HealthChecks(checked, self.health, s.health_checks)

    def _expand(self, names: list[str]) -> tuple[Deployment, ...]:
        out: list[Deployment] = []
        for n in names:
            out.extend(d for d in self._targets[n] if d not in out)
        return tuple(out)

    async def start(self) -> None:
        await start_state(self.store)
        await self.checks.start()

    async def close(self) -> None:
        await self.checks.close()
        await close_state(self.store)

    def policy(self, route: str, req: ChatRequest) -> Policy:
        """The route's policy, with the request's overrides (if any) applied."""
        p = self.policies.get(route)
        if p is None:
            p = self.policies[route] = Policy(route=route, retry=self.settings.retry,
                                              timeout_s=self.settings.timeout_s, timeouts=self.timeouts)
        md = req.metadata
        if not md or _OVERRIDES.isdisjoint(md):
            return p
        return self._override(p, md)

    def _override(self, p: Policy, md: dict[str, Any]) -> Policy:
        changes: dict[str, Any] = {}
        caps = self.settings.caps
        if "timeout_s" in md:
            t = _positive(md["timeout_s"], "metadata.timeout_s")
            if t > caps.max_timeout_s:
                raise BadRequest(f"metadata.timeout_s: {t:g} s is above this gateway's cap of {caps.max_timeout_s:g} s "
                                 "(resilience.caps.max_timeout_s)", param="metadata.timeout_s")
            changes["timeout_s"] = t
        if "max_attempts" in md:
            n = md["max_attempts"]
            if isinstance(n, str) and n.isdigit():
                n = int(n)
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= caps.max_attempts:
                raise BadRequest(f"metadata.max_attempts: must be an integer from 1 to {caps.max_attempts} "
                                 f"(resilience.caps.max_attempts), got {md['max_attempts']!r}",
                                 param="metadata.max_attempts")
            changes["retry"] = p.retry.model_copy(update={"max_attempts": n})
        if "fallbacks" in md:
            changes["fallbacks"] = self._resolve(md["fallbacks"], "metadata.fallbacks")
        for kind in ("context_window_fallbacks", "content_policy_fallbacks"):
            if kind in md:
                changes[kind] = self._resolve(md[kind], f"metadata.{kind}")
        mode = md.get("mode")
        if mode == "hedge" and p.hedge is None:
            changes["hedge"] = self.settings.hedge
        elif mode == "single" and p.hedge is not None:
            changes["hedge"] = None
        return dataclasses.replace(p, **changes) if changes else p

    def _resolve(self, value: Any, field: str) -> tuple[Deployment, ...]:
        if isinstance(value, str):  # OpenAI's `metadata` only carries strings: allow "a,b"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"{field}: must be a list of model or deployment names", param=field)
        for i, name in enumerate(value):
            if name not in self._targets:
                raise BadRequest(f"{field}[{i}]: unknown model '{name}'", param=field)
        return self._expand(value)


def _enforces_total(dep: Deployment) -> bool:
    """Whether a call to `dep` ends by `timeout_s` without a timer of ours: adapters that precompute an
    total timeout (the HTTP client's) enforce it, and a zero-latency sim never waits."""
    return dep.timeout_enforced


def _merge(base: Any, override: Any) -> Any:
    """`override`'s explicitly set fields on top of `base` (both pydantic models), or `base`."""
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_unset=True))


def _positive(value: Any, field: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not (v > 0 and math.isfinite(v)):
        raise BadRequest(f"{field}: must be a positive number of seconds, got {value!r}", param=field)
    return v
