"""The plain-number series behind /metrics export exactly what prometheus_client's own metrics would
have for the same observations (bucket edges, sums, label merging)."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelyard.telemetry.metrics import DOCS, DURATION_BUCKETS, OVERHEAD_BUCKETS
from modelyard.telemetry.series import Hist, Series, SeriesCollector, Tally


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text.decode()) for s in fam.samples
            if not s.name.endswith("_created")}


def test_a_value_on_a_bucket_edge_counts_in_that_bucket() -> None:
    h = Hist((0.1, 1.0))
    for v in (0.1, 0.05, 1.0, 1.5, 7.0):
        h.observe(v)
    assert h.counts == [2, 1, 2]
    assert h.buckets() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 5.0)]
    assert h.sum == 0.1 + 0.05 + 1.0 + 1.5 + 7.0


def test_export_matches_prometheus_client_for_the_same_observations() -> None:
    rng = random.Random(7)
    ours, tally = CollectorRegistry(), Tally()
    ours.register(SeriesCollector(tally, DOCS))
    ref = CollectorRegistry()
    req = Counter("modelyard_requests", "x", ["group", "deployment", "provider", "status", "error_type"], registry=ref)
    dur = Histogram("modelyard_request_duration_seconds", "x", ["group", "deployment"], buckets=DURATION_BUCKETS,
                    registry=ref)
    cost = Counter("modelyard_cost_usd", "x", ["group", "deployment", "provider"], registry=ref)
    # 500 and 502 are two series of the tally under one label set (status class 5xx): they must add up
    for status in (200, 500, 502):
        labels = ("g", "d", "sim", f"{status // 100}xx", "none")
        s = tally.series[("g", "d", status, None)] = Series(labels, DURATION_BUCKETS, OVERHEAD_BUCKETS)
        for _ in range(rng.randrange(5, 40)):
            v = rng.choice([*DURATION_BUCKETS, rng.uniform(0, 200)])
            s.requests += 1
            s.duration.observe(v)
            s.cost += v / 100
            req.labels(*labels).inc()
            dur.labels("g", "d").observe(v)
            cost.labels("g", "d", "sim").inc(v / 100)
    got, want = samples(generate_latest(ours)), samples(generate_latest(ref))
    for key, value in want.items():
        assert abs(got[key] - value) < 1e-9, key


def test_take_leaves_zeros_and_returns_the_delta() -> None:
    t = Tally()
    s = t.series[("g", "d", 200, None)] = Series(("g", "d", "sim", "2xx", "none"), DURATION_BUCKETS, OVERHEAD_BUCKETS)
    s.requests, s.cost = 3, 0.5
    s.duration.observe(0.2)
    t.fallbacks[("g", "timeout_error")] = 2
    delta = t.take()
    assert delta.series[("g", "d", 200, None)].requests == 3 and delta.fallbacks == {("g", "timeout_error"): 2}
    assert s.requests == 0 and s.cost == 0.0 and sum(s.duration.counts) == 0 and t.fallbacks == {}
    assert t.take().series == {}  # nothing new: nothing to move
