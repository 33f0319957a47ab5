"""The rolling stats window and the figures computed from it, checked against hand-computed values."""

from __future__ import annotations

from modelyard.store.rolling import SAMPLES_PER_CELL, Rolling, had_fallback, rule_of
from modelyard.store.rows import request_row
from modelyard.store.stats_view import models, quantile, routing, spend, summary, timeseries
from modelyard.types import Caller, RouteDecision, Scored, Usage


def _decision(chosen: str, rule: str | None = None, fallbacks: list[str] | None = None) -> RouteDecision:
    return RouteDecision(model="auto", deployment=chosen, strategy="rules", rule=rule, reason=f"rule '{rule}' target",
                         candidates=[Scored(chosen, 0.5, True, "ok")], fallbacks=fallbacks or [],
                         features={"tokens": 12, "task": "chat"})


def _row(t: float, model: str, dep: str | None, status: int = 200, cost: float = 0.0, latency: float | None = 100.0,
         **kw: object) -> object:
    row = request_row("r", model, status, deployment=dep, cost_usd=cost, latency_ms=latency,
                      usage=Usage(input_tokens=10, output_tokens=5), **kw)  # type: ignore[arg-type]
    return row._replace(ts=t)


def test_rule_and_fallback_are_read_from_the_logged_decision() -> None:
    assert rule_of(_decision("a", "light").log_json()) == "light"
    assert rule_of(_decision("a", None).log_json()) is None
    assert rule_of(None) is None
    assert not had_fallback(_decision("a").log_json())
    assert had_fallback(_decision("b", fallbacks=["a"]).log_json())
    assert not had_fallback(None)


def test_summary_models_routing_and_spend_match_hand_counts() -> None:
    r = Rolling(span_s=900, bucket_s=1.0)
    t = 1_000_000.0
    r.started = t - 100
    # auto: 3 to sim/fast by rule light (latencies 100, 200, 300), 1 to sim/frontier after a fallback
    for i, lat in enumerate((100.0, 200.0, 300.0)):
        r.observe(_row(t + i, "auto", "sim/fast", cost=0.001, latency=lat, decision=_decision("sim/fast", "light"),
                       caller=Caller(key_id="k1", team="red")))
    r.observe(_row(t + 3, "auto", "sim/frontier", cost=0.01, latency=900.0,
                   decision=_decision("sim/frontier", "hard", ["sim/balanced"])))
    r.observe(_row(t + 4, "nope", None, status=404, latency=1.0))  # an error: no latency sample
    r.observe(_row(t + 5, "fast", "sim/fast", status=499, cost=0.0001, latency=50.0))  # cancelled, not an error
    r.observe(_row(t + 6, "fast", "sim/fast", cost=0.0, cache="hit", saved_usd=0.002, latency=1.0))
    s = summary(r, t - 50, t + 50)
    assert s["requests"] == 7 and s["errors"] == 1 and s["cancelled"] == 1 and s["fallbacks"] == 1
    assert s["error_rate"] == round(1 / 7, 4) and s["cache_hit_rate"] == round(1 / 7, 4)
    assert abs(s["cost_usd"] - 0.0131) < 1e-12 and s["saved_usd"] == 0.002
    assert s["input_tokens"] == 70 and s["output_tokens"] == 35
    # latency samples come from rows under 400: 100, 200, 300, 900 and the cache hit's 1 (not the 404 or the 499)
    assert s["latency_p50_ms"] == quantile([100.0, 200.0, 300.0, 900.0, 1.0], 0.5) == 200.0
    assert s["requests_per_s"] == round(7 / 100, 3)  # the server has seen 100 s of the 100 s window

    by_dep = {d["deployment"]: d for d in models(r, t - 50, t + 50)["deployments"]}
    assert by_dep["sim/fast"]["requests"] == 5 and by_dep["sim/frontier"]["latency_p50_ms"] == 900.0
    assert by_dep[None]["errors"] == 1

    groups = {g["group"]: g for g in routing(r, t - 50, t + 50)["groups"]}
    auto = groups["auto"]
    assert auto["requests"] == 4 and auto["fallbacks"] == 1 and auto["strategy"] == "rules"
    assert [(m["deployment"], m["share"]) for m in auto["mix"]] == [("sim/fast", 0.75), ("sim/frontier", 0.25)]
    light = next(x for x in auto["reasons"] if x["rule"] == "light")
    assert light["requests"] == 3 and light["example_reason"] == "rule 'light' target"

    by_key = {x["name"]: x for x in spend(r, t - 50, t + 50, "key")["rows"]}
    assert by_key["k1"]["requests"] == 3 and abs(by_key["k1"]["cost_usd"] - 0.003) < 1e-12
    assert by_key["master key / no key"]["requests"] == 4
    by_team = {x["name"]: x["requests"] for x in spend(r, t - 50, t + 50, "team")["rows"]}
    assert by_team == {"red": 3, "no team": 4}
    by_group = spend(r, t - 50, t + 50, "group")
    assert by_group["rows"][0]["name"] == "auto" and abs(by_group["total_usd"] - 0.0131) < 1e-12


def test_timeseries_puts_each_request_in_its_step() -> None:
    r = Rolling(span_s=900, bucket_s=1.0)
    t = 2_000_000.0  # a multiple of 10
    for dt in (0.5, 1.5, 12.0, 25.0, 25.5):
        r.observe(_row(t + dt, "auto", "sim/fast", cost=0.5, latency=dt * 10))
    ts = timeseries(r, t, t + 30, 10.0)
    assert ts["t"] == [t, t + 10, t + 20, t + 30]
    assert ts["requests"] == [2, 1, 2, 0] and ts["cost_usd"] == [1.0, 0.5, 1.0, 0.0]
    assert ts["requests_per_s"] == [0.2, 0.1, 0.2, 0.0]
    assert ts["latency_p50_ms"][1] == 120.0 and ts["latency_p50_ms"][3] is None


def test_window_keeps_only_its_span_and_bounded_samples() -> None:
    r = Rolling(span_s=60, bucket_s=1.0)
    t = 3_000_000.0
    for i in range(1000):  # one busy second: the counts are exact, the latency sample is bounded
        r.observe(_row(t, "auto", "sim/fast", latency=float(i)))
    assert sum(c.n for b in r.buckets for c in b.cells.values()) == 1000
    assert all(len(c.lat) <= SAMPLES_PER_CELL for b in r.buckets for c in b.cells.values())
    for i in range(1, 200):
        r.observe(_row(t + i, "auto", "sim/fast"))
    assert len(r.buckets) <= 61 and r.buckets[0].t >= t + 199 - 61
    assert summary(r, t - 10, t + 1)["requests"] == 0  # the busy second has expired


def test_a_repeated_routing_record_is_read_once_and_a_new_one_read_again() -> None:
    """The router hands the same cached record string for a group's repeated outcome; observe reads it
    once, and any other record (another outcome, or no decision) is read for itself."""
    r = Rolling(span_s=900, bucket_s=1.0)
    t = 1_000_000.0
    light, hard = _decision("sim/fast", "light"), _decision("sim/frontier", "hard", ["sim/balanced"])
    same = _row(t, "auto", "sim/fast", decision=light)
    for i, row in enumerate([same, same, _row(t, "auto", "sim/frontier", decision=hard), same,
                             _row(t, "auto", "sim/fast"), same]):
        r.observe(row._replace(ts=t + i))  # type: ignore[attr-defined]
    by_rule = {(e["deployment"], e["rule"]): e["requests"] for g in routing(r, t - 50, t + 50)["groups"]
               for e in g["reasons"]}
    assert by_rule == {("sim/fast", "light"): 4, ("sim/frontier", "hard"): 1, ("sim/fast", None): 1}
    assert summary(r, t - 50, t + 50)["fallbacks"] == 1
