"""Prometheus metrics, fed by the finished request's log row (`Gateway.observers`).

Every label value comes from a set built at start-up from the config: the group (a configured model
group, deployment or pipeline name; anything else a client sent is `other`), the deployment and
its provider, the status class and the error type of the taxonomy. A flood of made-up model names
therefore adds no series. Per request the observer finds its series with one dict lookup and adds
to plain numbers (telemetry/series.py), which become metric families when scraped.

Gauges that describe the present (breaker states, requests in flight) are read when scraped. With
`modelyard serve --workers N` the process runs in prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by the command): each worker moves its counts into its file at most
FLUSH_EVERY_S after a request and at each scrape it serves; counters and histograms are summed over the
workers' files, in-flight is summed over the live workers, breaker states take the worst worker's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .. import errors
from . import console
from .series import MultiprocessSink, Series, SeriesCollector, Tally

if TYPE_CHECKING:
    from ..gateway import Gateway
    from ..store.rows import Row

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"  # a model name, error type or scope outside the configured sets
NONE = "none"  # no deployment (refused before routing, a mode's parent row), no error

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
CACHE_RESULTS = ("hit", "semantic-hit", "miss")
SCOPES = ("key", "team", "user", "tag", "global", "master", "deployment")
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
FLUSH_EVERY_S = 1.0  # multiprocess mode: how stale another worker's counts can be at a scrape

DOCS = {
    "requests": "Finished requests (sub-calls of modes included).",
    "duration": "Whole-request latency.",
    "ttft": "Time to first token of streamed requests.",
    "tokens": "Tokens billed, by kind (cached_input and reasoning are included in input and output).",
    "cost": "Cost of the upstream calls in US dollars.",
    "attempts": "Upstream calls (retries and hedges included).",
    "retries": "Calls repeated on the same deployment after a failure.",
    "fallbacks": "Moves to another deployment after a failure, by the failure's error type.",
    "overhead": "Time spent in the gateway, not upstream (streams: until the first token).",
    "cache": "Response-cache lookups by result.",
}


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
        # What each finished request adds to (telemetry/series.py): plain numbers, exported at scrape time.
        self.tally = Tally()
        if self.multiprocess:  # the workers' shared files: the tally's deltas go into prometheus_client's values
            self._sink: MultiprocessSink | None = MultiprocessSink(self.tally, _per_request_metrics(r))
        else:
            self._sink = None
            r.register(SeriesCollector(self.tally, DOCS))
        self._flush_due = False
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
        # One unpacking of the columns read, model to upstream_ms (Row's order; a slice of the row is a
        # plain tuple, which unpacks without an iterator): it runs for every request.
        (model, deployment, _, status, error_type, _, input_tokens, output_tokens, cached_tokens, reasoning_tokens,
         cost, latency_ms, ttft_ms, stream, _, _, _, _, _, cache, _, _, _, attempts, fallbacks, retries, reasons,
         upstream_ms) = row[2:30]
        group = self.groups.get(model, OTHER)
        s = self.tally.series.get((group, deployment, status, error_type))
        if s is None:
            s = self._new_series((group, deployment, status, error_type))
        s.requests += 1
        if latency_ms is not None:
            s.duration.observe(latency_ms / 1000)
            if upstream_ms is not None:
                base = ttft_ms if stream and ttft_ms is not None else latency_ms
                s.overhead.observe(max(0.0, base - upstream_ms) / 1000)
        if ttft_ms is not None:
            s.ttft.observe(ttft_ms / 1000)
        if cost:
            s.cost += cost
        tokens = s.tokens
        if input_tokens:
            tokens[0] += input_tokens
            if cached_tokens:
                tokens[1] += cached_tokens
        if output_tokens:
            tokens[2] += output_tokens
            if reasoning_tokens:
                tokens[3] += reasoning_tokens
        if attempts:
            s.attempts += attempts
            if retries:
                s.retries += retries
            if fallbacks and reasons:
                tally_fallbacks = self.tally.fallbacks
                for reason in reasons.split(","):
                    k = (group, reason if reason in self.error_types else OTHER)
                    tally_fallbacks[k] = tally_fallbacks.get(k, 0) + 1
        if cache is not None:
            self.cache_request(cache, group)
        if self._sink is not None and not self._flush_due:
            self._flush_later()

    def _flush_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (no event loop: a library caller) now, then
            self._sink.flush()  # type: ignore[union-attr]
            return
        self._flush_due = True
        loop.call_later(FLUSH_EVERY_S, self.flush)

    def flush(self) -> None:
        """Multiprocess mode: move what was counted into the workers' shared files."""
        self._flush_due = False
        if self._sink is not None:
            self._sink.flush()

    def _new_series(self, key: tuple[str, str | None, int, str | None]) -> Series:
        group, dep, status, etype = key
        provider = self.providers.get(dep, NONE)
        dep_label = dep if dep in self.providers else NONE
        if etype is None:
            etype_label = "cancelled" if status == 499 else NONE
        else:
            etype_label = etype if etype in self.error_types else OTHER
        s = self.tally.series[key] = Series((group, dep_label or NONE, provider, f"{status // 100}xx", etype_label),
                                            DURATION_BUCKETS, OVERHEAD_BUCKETS)
        return s

    # --- what other stages report (cache, budgets, rate limits) ------------------------------
    def cache_request(self, result: str, group: str) -> None:
        """A response-cache lookup (from the row's `cache`): `hit`, `semantic-hit` or `miss`."""
        key = (group, result if result in CACHE_RESULTS else OTHER)
        self.tally.cache[key] = self.tally.cache.get(key, 0) + 1

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
            self.flush()  # this worker's latest counts (the others' are at most FLUSH_EVERY_S old)
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=self.multiprocess)
            return generate_latest(registry)
        return generate_latest(self.registry)


def _per_request_metrics(r: CollectorRegistry) -> dict[str, Any]:
    """prometheus_client's own metrics for the families the tally feeds (multiprocess mode only)."""
    gd = ["group", "deployment"]
    return {
        "requests": Counter("modelyard_requests", DOCS["requests"],
                            ["group", "deployment", "provider", "status", "error_type"], registry=r),
        "duration": Histogram("modelyard_request_duration_seconds", DOCS["duration"], gd, buckets=DURATION_BUCKETS,
                              registry=r),
        "ttft": Histogram("modelyard_ttft_seconds", DOCS["ttft"], gd, buckets=DURATION_BUCKETS, registry=r),
        "tokens": Counter("modelyard_tokens", DOCS["tokens"], [*gd, "kind"], registry=r),
        "cost": Counter("modelyard_cost_usd", DOCS["cost"], [*gd, "provider"], registry=r),
        "attempts": Counter("modelyard_attempts", DOCS["attempts"], gd, registry=r),
        "retries": Counter("modelyard_retries", DOCS["retries"], gd, registry=r),
        "fallbacks": Counter("modelyard_fallbacks", DOCS["fallbacks"], ["group", "reason"], registry=r),
        "overhead": Histogram("modelyard_gateway_overhead_seconds", DOCS["overhead"], ["group"],
                              buckets=OVERHEAD_BUCKETS, registry=r),
        "cache": Counter("modelyard_cache_requests", DOCS["cache"], ["group", "result"], registry=r),
    }


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
