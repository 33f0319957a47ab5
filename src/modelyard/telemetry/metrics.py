"""Prometheus metrics, fed by the finished request's log row (`Gateway.observers`).

Every label value comes from a set built at start-up from the config: the group (a configured model
group, deployment or pipeline name; anything else a client sent is `other`), the deployment and
its provider, the status class and the error type of the taxonomy. A flood of made-up model names
therefore adds no series. Per request the observer does a few dict lookups and counter increments
on label children resolved once per label combination.

Gauges that describe the present (breaker states, requests in flight) are read when scraped. With
`modelyard serve --workers N` the process runs in prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by the command): counters and histograms are summed over the
workers' files, in-flight is summed over the live workers, breaker states take the worst worker's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .. import errors
from . import console

if TYPE_CHECKING:
    from ..gateway import Gateway
    from ..store.rows import Row

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"  # a model name, error type or scope outside the configured sets
NONE = "none"  # no deployment (refused before routing, a mode's parent row), no error

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
TOKEN_KINDS = ("input", "cached_input", "output", "reasoning")
CACHE_RESULTS = ("hit", "semantic-hit", "miss")
SCOPES = ("key", "team", "user", "tag", "global", "master", "deployment")
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def multiprocess_dir() -> str | None:
    """The directory shared by `modelyard serve --workers N` (None: one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _error_types() -> frozenset[str]:
    """Every `type` of the error taxonomy (errors.py), walked once."""
    out: set[str] = set()
    todo: list[type[errors.ModelyardError]] = [errors.ModelyardError]
    while todo:
        cls = todo.pop()
        out.add(cls.type)
        todo.extend(cls.__subclasses__())
    return frozenset(out)


class _Series:
    """The label children one (group, deployment, status class, error type) updates."""

    __slots__ = ("attempts", "cost", "duration", "overhead", "requests", "retries", "tokens", "ttft")

    def __init__(self, m: GatewayMetrics, group: str, dep: str, provider: str, status: str, etype: str) -> None:
        self.requests = m.requests.labels(group, dep, provider, status, etype)
        self.duration = m.duration.labels(group, dep)
        self.ttft = m.ttft.labels(group, dep)
        self.overhead = m.overhead.labels(group)
        self.cost = m.cost.labels(group, dep, provider)
        self.tokens = tuple(m.tokens.labels(group, dep, k) for k in TOKEN_KINDS)
        self.attempts = m.attempts.labels(group, dep)
        self.retries = m.retries.labels(group, dep)


class GatewayMetrics:
    """The gateway's metrics in their own registry (so several gateways in one process, as in
    tests, do not collide). `observe` is the `Gateway.observers` callback."""

    def __init__(self, gateway: Gateway, inflight: Callable[[], int] | None = None) -> None:
        self.gateway = gateway
        self.inflight = inflight
        self.multiprocess = multiprocess_dir()
        self.registry = r = CollectorRegistry(auto_describe=False)
        groups = set(gateway.routes) | set(gateway.pipelines)
        self.groups: dict[str, str] = {g: g for g in groups}
        self.providers: dict[str | None, str] = {n: d.provider for n, d in gateway.deployments.items()}
        self.error_types = _error_types()
        # keyed by (group, deployment, status, error type): all bounded by the config and the taxonomy
        self._series: dict[tuple[str, str | None, int, str | None], _Series] = {}
        self._fallbacks: dict[tuple[str, str], Any] = {}
        self._cache: dict[tuple[str, str], Any] = {}
        gd = ["group", "deployment"]
        self.requests = Counter("modelyard_requests", "Finished requests (sub-calls of modes included).",
                                ["group", "deployment", "provider", "status", "error_type"], registry=r)
        self.duration = Histogram("modelyard_request_duration_seconds", "Whole-request latency.", gd,
                                  buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("modelyard_ttft_seconds", "Time to first token of streamed requests.", gd,
                              buckets=DURATION_BUCKETS, registry=r)
        self.tokens = Counter("modelyard_tokens", "Tokens billed, by kind (cached_input and reasoning are "
                              "included in input and output).", [*gd, "kind"], registry=r)
        self.cost = Counter("modelyard_cost_usd", "Cost of the upstream calls in US dollars.",
                            [*gd, "provider"], registry=r)
        self.attempts = Counter("modelyard_attempts", "Upstream calls (retries and hedges included).", gd,
                                registry=r)
        self.retries = Counter("modelyard_retries", "Calls repeated on the same deployment after a failure.", gd,
                               registry=r)
        self.fallbacks = Counter("modelyard_fallbacks", "Moves to another deployment after a failure, by the "
                                 "failure's error type.", ["group", "reason"], registry=r)
        self.overhead = Histogram("modelyard_gateway_overhead_seconds", "Time spent in the gateway, not upstream "
                                  "(streams: until the first token).", ["group"], buckets=OVERHEAD_BUCKETS,
                                  registry=r)
        self.cache_requests = Counter("modelyard_cache_requests", "Response-cache lookups by result.",
                                      ["group", "result"], registry=r)
        self.rate_limited_total = Counter("modelyard_rate_limited", "Requests refused by a rate limit.",
                                          ["scope"], registry=r)
        self.budget_used = Gauge("modelyard_budget_used_ratio", "Highest share of a budget used, by scope kind.",
                                 ["scope"], registry=r, multiprocess_mode="max")
        self.breaker = Gauge("modelyard_breaker_state", "Circuit breaker per deployment: 0 closed, 1 half-open, "
                             "2 open.", ["deployment"], registry=r, multiprocess_mode="max")
        self.in_flight = Gauge("modelyard_in_flight", "Requests being served.", registry=r,
                               multiprocess_mode="livesum")
        self.state_fallback = Gauge("modelyard_state_fallback", "1 while shared state (Redis) is unreachable and "
                                    "this process runs on its local fallback.", registry=r, multiprocess_mode="max")
        self.log_lines_dropped = Counter("modelyard_log_lines_dropped", "Console log lines dropped because the "
                                         "console (stderr) was not being read.", registry=r)
        console.on_drop(self.log_lines_dropped.inc)  # (called from whichever thread logged)
        self._breaker_children = {n: self.breaker.labels(n) for n in gateway.deployments}
        self.on_refresh: list[Callable[[], None]] = []  # other present-state readers (budgets_api.py)
        self.refresh()

    # --- the observer: one finished request -------------------------------------------------
    def observe(self, row: Row) -> None:
        group = self.groups.get(row.model, OTHER)
        key = (group, row.deployment, row.status, row.error_type)
        s = self._series.get(key)
        if s is None:
            s = self._new_series(key)
        s.requests.inc()
        if row.latency_ms is not None:
            s.duration.observe(row.latency_ms / 1000)
            if row.upstream_ms is not None:
                base = row.ttft_ms if row.stream and row.ttft_ms is not None else row.latency_ms
                s.overhead.observe(max(0.0, base - row.upstream_ms) / 1000)
        if row.ttft_ms is not None:
            s.ttft.observe(row.ttft_ms / 1000)
        if row.cost_usd:
            s.cost.inc(row.cost_usd)
        if row.input_tokens:
            s.tokens[0].inc(row.input_tokens)
            if row.cached_input_tokens:
                s.tokens[1].inc(row.cached_input_tokens)
        if row.output_tokens:
            s.tokens[2].inc(row.output_tokens)
            if row.reasoning_tokens:
                s.tokens[3].inc(row.reasoning_tokens)
        if row.attempts:
            s.attempts.inc(row.attempts)
            if row.retries:
                s.retries.inc(row.retries)
            if row.fallbacks and row.fallback_reasons:
                for reason in row.fallback_reasons.split(","):
                    self._fallback(group, reason).inc()
        if row.cache is not None:
            self.cache_request(row.cache, group)

    def _new_series(self, key: tuple[str, str | None, int, str | None]) -> _Series:
        group, dep, status, etype = key
        provider = self.providers.get(dep, NONE)
        dep_label = dep if dep in self.providers else NONE
        if etype is None:
            etype_label = "cancelled" if status == 499 else NONE
        else:
            etype_label = etype if etype in self.error_types else OTHER
        s = self._series[key] = _Series(self, group, dep_label or NONE, provider, f"{status // 100}xx",
                                        etype_label)
        return s

    def _fallback(self, group: str, reason: str) -> Any:
        c = self._fallbacks.get((group, reason))
        if c is None:
            c = self._fallbacks[(group, reason)] = self.fallbacks.labels(
                group, reason if reason in self.error_types else OTHER)
        return c

    # --- what other stages report (cache, budgets, rate limits) ------------------------------
    def cache_request(self, result: str, group: str) -> None:
        """A response-cache lookup (from the row's `cache`): `hit`, `semantic-hit` or `miss`."""
        key = (group, result)
        c = self._cache.get(key)
        if c is None:
            c = self._cache[key] = self.cache_requests.labels(group, result if result in CACHE_RESULTS else OTHER)
        c.inc()

    def rate_limited(self, scope_kind: str) -> None:
        """A request refused by a rate limit of a `key`, `team`, `user`, ... scope."""
        self.rate_limited_total.labels(scope_kind if scope_kind in SCOPES else OTHER).inc()

    def budget_ratio(self, scope_kind: str, ratio: float) -> None:
        """The share of a budget now used (the highest one of the kind is what to watch)."""
        self.budget_used.labels(scope_kind if scope_kind in SCOPES else OTHER).set(ratio)

    # --- scrape time --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the present: breaker states and requests in flight."""
        breaker = self.gateway.health.breaker
        for name, child in self._breaker_children.items():
            child.set(BREAKER_VALUES.get(breaker.state(name), 2.0))
        if self.inflight is not None:
            self.in_flight.set(self.inflight())
        status = getattr(self.gateway.resilience.store, "status", None)
        if status is not None:
            self.state_fallback.set(0.0 if status()["shared"] else 1.0)
        for read in self.on_refresh:
            read()

    def exposition(self) -> bytes:
        """The Prometheus text format: this process's registry, or every worker's files."""
        self.refresh()
        if self.multiprocess:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=self.multiprocess)
            return generate_latest(registry)
        return generate_latest(self.registry)


# The metrics of the running server, for stages that report events not in the log row (rate limits,
# budgets): they call these module functions, which do nothing while no server has installed metrics.
# Cache lookups need no call: they are counted from the row's `cache` column.
ACTIVE: GatewayMetrics | None = None


def rate_limited(scope_kind: str) -> None:
    if ACTIVE is not None:
        ACTIVE.rate_limited(scope_kind)


def budget_ratio(scope_kind: str, ratio: float) -> None:
    if ACTIVE is not None:
        ACTIVE.budget_ratio(scope_kind, ratio)
