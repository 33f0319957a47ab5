"""The per-request half of the Prometheus metrics: plain numbers, exported when scraped.

Why not prometheus_client's own `inc`/`observe` per request: each call checks the metric and takes a
lock, and a request makes about ten of them, which measured ~55k CPU instructions of a ~665k
request (bench/gateway.yaml, in process). Here a finished request finds its `Series` with one dict
lookup and adds to ints and floats; the numbers reach Prometheus at scrape time, either as metric
families built by `SeriesCollector` (one process) or, with `modelyard serve --workers N`, as deltas
that `MultiprocessSink` moves into prometheus_client's shared files (at most a second after the
request, and at each scrape).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

TOKEN_KINDS = ("input", "cached_input", "output", "reasoning")


class Hist:
    """Observations in fixed buckets (`counts[i]`: values ≤ `bounds[i]`, not cumulative; the last
    counts the rest) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add(self, other: Hist) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, as the exposition format wants them."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((floatToGoString(bound), float(running)))
        return out


class Series:
    """What one (group, deployment, status, error type) has accumulated; `labels` are the bounded
    label values it is exported under: (group, deployment, provider, status class, error type)."""

    __slots__ = ("attempts", "cost", "duration", "labels", "overhead", "requests", "retries", "tokens", "ttft")

    def __init__(self, labels: tuple[str, str, str, str, str], duration_bounds: tuple[float, ...],
                 overhead_bounds: tuple[float, ...]) -> None:
        self.labels = labels
        self.requests = 0
        self.duration = Hist(duration_bounds)
        self.ttft = Hist(duration_bounds)
        self.overhead = Hist(overhead_bounds)
        self.cost = 0.0
        self.tokens = [0, 0, 0, 0]  # TOKEN_KINDS
        self.attempts = 0
        self.retries = 0

    def take(self) -> Series:
        """A copy of the numbers so far, leaving this series at zero (the multiprocess sink's delta)."""
        out = Series(self.labels, self.duration.bounds, self.overhead.bounds)
        for name in ("requests", "duration", "ttft", "overhead", "cost", "tokens", "attempts", "retries"):
            setattr(out, name, getattr(self, name))
        self.requests, self.cost, self.tokens, self.attempts, self.retries = 0, 0.0, [0, 0, 0, 0], 0, 0
        self.duration, self.ttft = Hist(self.duration.bounds), Hist(self.ttft.bounds)
        self.overhead = Hist(self.overhead.bounds)
        return out


class Tally:
    """Everything the request path counts: the series, and fallbacks and cache lookups by group."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str | None, int, str | None], Series] = {}
        self.fallbacks: dict[tuple[str, str], int] = {}  # (group, reason label)
        self.cache: dict[tuple[str, str], int] = {}  # (group, result label)

    def take(self) -> Tally:
        """The numbers since the last take, leaving zeros (the multiprocess sink)."""
        out = Tally()
        out.series = {k: s.take() for k, s in self.series.items() if s.requests}
        out.fallbacks, self.fallbacks = self.fallbacks, {}
        out.cache, self.cache = self.cache, {}
        return out


def _counter(name: str, doc: str, labels: list[str], values: Mapping[Any, float]) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=labels)
    for lab, v in sorted(list(values.items())):
        fam.add_metric(list(lab), v)
    return fam


def _histogram(name: str, doc: str, labels: list[str], hists: dict[tuple[str, ...], Hist]) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for lab, h in sorted(hists.items()):
        fam.add_metric(list(lab), h.buckets(), h.sum)
    return fam


class SeriesCollector(Collector):
    """The tally as metric families (one process): summed by label values at scrape time."""

    def __init__(self, tally: Tally, docs: dict[str, str]) -> None:
        self.tally = tally
        self.docs = docs

    def collect(self) -> Iterator[Any]:
        requests: dict[tuple[str, ...], float] = {}
        cost: dict[tuple[str, ...], float] = {}
        tokens: dict[tuple[str, ...], float] = {}
        attempts: dict[tuple[str, ...], float] = {}
        retries: dict[tuple[str, ...], float] = {}
        duration: dict[tuple[str, ...], Hist] = {}
        ttft: dict[tuple[str, ...], Hist] = {}
        overhead: dict[tuple[str, ...], Hist] = {}
        for s in list(self.tally.series.values()):
            group, dep, provider, _, _ = s.labels
            requests[s.labels] = requests.get(s.labels, 0) + s.requests
            gd = (group, dep)
            _merge(duration, gd, s.duration)
            _merge(ttft, gd, s.ttft)
            _merge(overhead, (group,), s.overhead)
            if s.cost:
                cost[(group, dep, provider)] = cost.get((group, dep, provider), 0.0) + s.cost
            for kind, n in zip(TOKEN_KINDS, s.tokens, strict=True):
                if n:
                    tokens[(group, dep, kind)] = tokens.get((group, dep, kind), 0) + n
            if s.attempts:
                attempts[gd] = attempts.get(gd, 0) + s.attempts
            if s.retries:
                retries[gd] = retries.get(gd, 0) + s.retries
        d, gd_names = self.docs, ["group", "deployment"]
        yield _counter("modelyard_requests", d["requests"],
                       ["group", "deployment", "provider", "status", "error_type"], requests)
        yield _histogram("modelyard_request_duration_seconds", d["duration"], gd_names, duration)
        yield _histogram("modelyard_ttft_seconds", d["ttft"], gd_names, ttft)
        yield _counter("modelyard_tokens", d["tokens"], [*gd_names, "kind"], tokens)
        yield _counter("modelyard_cost_usd", d["cost"], [*gd_names, "provider"], cost)
        yield _counter("modelyard_attempts", d["attempts"], gd_names, attempts)
        yield _counter("modelyard_retries", d["retries"], gd_names, retries)
        yield _counter("modelyard_fallbacks", d["fallbacks"], ["group", "reason"], self.tally.fallbacks)
        yield _histogram("modelyard_gateway_overhead_seconds", d["overhead"], ["group"], overhead)
        yield _counter("modelyard_cache_requests", d["cache"], ["group", "result"], self.tally.cache)


def _merge(into: dict[tuple[str, ...], Hist], key: tuple[str, ...], h: Hist) -> None:
    acc = into.get(key)
    if acc is None:
        acc = into[key] = Hist(h.bounds)
    acc.add(h)


class MultiprocessSink:
    """With `--workers N`, prometheus_client keeps each worker's values in files that a scrape sums;
    this moves the tally's numbers into those values (counters by `inc`, histogram buckets and sums
    into the child's bucket and sum values, the only way to add a count of observations at once)."""

    def __init__(self, tally: Tally, metrics: dict[str, Any]) -> None:
        self.tally = tally
        self.m = metrics  # name -> the prometheus_client metric (Counter / Histogram) of that family

    def flush(self) -> None:
        t = self.tally.take()
        m = self.m
        for s in t.series.values():
            group, dep, provider, status, etype = s.labels
            m["requests"].labels(group, dep, provider, status, etype).inc(s.requests)
            _hist_into(m["duration"].labels(group, dep), s.duration)
            _hist_into(m["ttft"].labels(group, dep), s.ttft)
            _hist_into(m["overhead"].labels(group), s.overhead)
            if s.cost:
                m["cost"].labels(group, dep, provider).inc(s.cost)
            for kind, n in zip(TOKEN_KINDS, s.tokens, strict=True):
                if n:
                    m["tokens"].labels(group, dep, kind).inc(n)
            if s.attempts:
                m["attempts"].labels(group, dep).inc(s.attempts)
            if s.retries:
                m["retries"].labels(group, dep).inc(s.retries)
        for (group, reason), n in t.fallbacks.items():
            m["fallbacks"].labels(group, reason).inc(n)
        for (group, result), n in t.cache.items():
            m["cache"].labels(group, result).inc(n)


def _hist_into(child: Any, h: Hist) -> None:
    """prometheus_client's histogram child keeps per-bucket (not cumulative) counts, as `Hist` does."""
    for value, n in zip(child._buckets, h.counts, strict=True):
        if n:
            value.inc(n)
    child._sum.inc(h.sum)
