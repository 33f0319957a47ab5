"""The plain verdict: a clear win, a clear no-difference, too little data, and the guardrail."""

from __future__ import annotations

import random
import re
from typing import Any

from modelyard.config import ExperimentConfig
from modelyard.experiments.data import ExperimentData, VariantData
from modelyard.experiments.report import build_report


def variant(rng: random.Random, n: int, cost: float, spread: float, *, ok: float = 1.0, latency: float = 500,
            feedback: float | None = None) -> VariantData:
    v = VariantData(requests=n)
    for _ in range(n):
        if rng.random() >= ok:
            continue
        v.successes += 1
        v.costs_usd.append(max(1e-7, rng.gauss(cost, spread)))
        v.latencies_ms.append(rng.lognormvariate(0, 0.5) * latency)
        if feedback is not None:
            v.feedback.append(1.0 if rng.random() < feedback else 0.0)
    return v


def report(metric: str = "cost", **variants: VariantData) -> dict[str, Any]:
    cfg = ExperimentConfig.model_validate({"group": "smart", "metric": metric,
                                           "variants": {name: {} for name in variants}})
    return build_report("exp", cfg, dict.fromkeys(variants, 100 / len(variants)), ExperimentData(dict(variants)))


def test_clear_win() -> None:
    rng = random.Random(1)
    r = report(control=variant(rng, 600, 0.010, 0.002, ok=0.98), treatment=variant(rng, 600, 0.0062, 0.0012, ok=0.98))
    text = r["verdict"]
    m = re.fullmatch(r"treatment is (\d+)% cheaper per request \(95% CI (\d+)–(\d+)%, p=[^)]+\); "
                     r"success rate not different at 95% \(p=[\d.]+\)\.", text)
    assert m, text
    pct, lo, hi = map(int, m.groups())
    assert 35 <= pct <= 41 and lo <= pct <= hi
    assert r["variants"][1]["outcome"] == "better"


def test_clear_no_difference() -> None:
    rng = random.Random(2)
    r = report(control=variant(rng, 3000, 0.010, 0.002), treatment=variant(rng, 3000, 0.010, 0.002))
    assert re.fullmatch(r"treatment: cost per request not different at 95% \(p=[\d.]+; a 10% difference would have "
                        r"been found\); success rate not different at 95% \(p=1\)\.", r["verdict"]), r["verdict"]
    assert r["verdicts"][0]["outcome"] == "no-difference"


def test_too_little_data() -> None:
    rng = random.Random(3)
    r = report(control=variant(rng, 10, 0.010, 0.002), treatment=variant(rng, 10, 0.006, 0.002))
    need = r["verdicts"][0]["needed_per_variant"]
    assert 20 <= need <= 200  # sd ≈ 0.2·mean: 2·((1.96 + 0.84)·0.2/0.1)² ≈ 63, from 10 noisy samples
    assert r["verdict"] == (f"treatment: not enough data: {need - 10} more successful requests per variant needed to "
                            "find a 10% difference in cost per request (now 10 and 10 for control); success rate: not "
                            "enough requests yet.")
    # noisy costs: the power calculation asks for many more (2·((1.96 + 0.84)·sd/(0.1·mean))² with sd ≈ mean,
    # less the clipping of negative costs)
    r = report(control=variant(rng, 50, 0.010, 0.010), treatment=variant(rng, 50, 0.010, 0.010))
    v = r["verdicts"][0]
    assert v["outcome"] == "not-enough-data" and 500 <= v["needed_per_variant"] <= 2500
    assert re.search(rf"not enough data: {v['needed_per_variant'] - min(r['variants'][0]['successes'], r['variants'][1]['successes'])} more successful requests", r["verdict"])  # noqa: E501


def test_guardrail_names_a_worse_success_rate() -> None:
    rng = random.Random(4)
    r = report(control=variant(rng, 3000, 0.010, 0.002, ok=0.99), treatment=variant(rng, 3000, 0.006, 0.001, ok=0.94))
    guard = r"; success rate \d\.\d points lower \(95% CI \d\.\d–\d\.\d, p=[^)]+\)\.$"
    assert re.search(guard, r["verdict"]), r["verdict"]


def test_latency_and_feedback_verdicts() -> None:
    rng = random.Random(5)
    r = report("latency", control=variant(rng, 800, 0.01, 0.001, latency=800),
               treatment=variant(rng, 800, 0.01, 0.001, latency=500))
    assert re.match(r"treatment is (3\d|4\d)% faster at the median \(95% CI \d+–\d+%", r["verdict"]), r["verdict"]
    assert r["variants"][1]["vs_control"]["latency"]["test"] == "Mann-Whitney U"
    r = report("feedback", control=variant(rng, 2000, 0.01, 0.001, feedback=0.6),
               treatment=variant(rng, 2000, 0.01, 0.001, feedback=0.7))
    assert re.match(r"treatment scores 0\.\d{3} higher on user feedback \(95% CI 0\.\d{3}–0\.\d{3} on a 0–1 scale",
                    r["verdict"]), r["verdict"]
    t = r["variants"][1]
    assert t["feedback_count"] == t["successes"] == 2000 and abs(t["feedback_mean"] - 0.7) < 0.03
    assert t["feedback_mean_ci"][0] < t["feedback_mean"] < t["feedback_mean_ci"][1]


def test_two_treatments_share_the_error_budget() -> None:
    rng = random.Random(6)
    r = report(control=variant(rng, 600, 0.010, 0.002), a=variant(rng, 600, 0.006, 0.001),
               b=variant(rng, 600, 0.010, 0.002))
    assert r["level"] == 0.975
    assert r["verdict"].startswith("a is ") and "(97.5% CI" in r["verdict"]
    assert "b: cost per request not different at 97.5%" in r["verdict"]
