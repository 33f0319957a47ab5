"""The statistics against published table values and a worked example computed by hand."""

from __future__ import annotations

import math
import random

import pytest

from modelyard.config import ExperimentConfig
from modelyard.experiments import stats
from modelyard.experiments.data import ExperimentData, VariantData
from modelyard.experiments.report import build_report

approx = pytest.approx


def test_distributions_against_tables() -> None:
    # Student's t critical values (any t table): t(0.975; 1) = 12.7062, t(0.975; 10) = 2.2281, t(0.995; 30) = 2.7500
    assert stats.t_ppf(0.975, 1) == approx(12.7062, abs=1e-4)
    assert stats.t_ppf(0.975, 10) == approx(2.2281, abs=1e-4)
    assert stats.t_ppf(0.995, 30) == approx(2.7500, abs=1e-4)
    assert stats.t_ppf(0.025, 10) == approx(-2.2281, abs=1e-4)
    assert stats.t_sf2(2.2281, 10) == approx(0.05, abs=1e-4)
    assert stats.t_sf2(1.96, math.inf) == approx(0.05, abs=1e-4)
    # I_x(a, b) with integer a, b is a binomial tail: I_0.5(2, 3) = P(Bin(4, 0.5) >= 2) = 11/16
    assert stats.betainc(2, 3, 0.5) == approx(11 / 16, abs=1e-12)
    assert stats.betainc(1, 1, 0.3) == approx(0.3, abs=1e-12)  # uniform
    assert stats.z_for(0.95) == approx(1.959964, abs=1e-6)
    assert stats.norm_cdf(1.0) == approx(0.841345, abs=1e-6)


def test_welch_by_hand() -> None:
    xs, ys = [2, 4, 4, 6], [5, 7, 9, 7, 7]
    # means 4 and 7; variances 8/3 and 2; se² = (8/3)/4 + 2/5 = 1.066667, se = 1.032796
    # t = -3 / 1.032796 = -2.904738
    # df = 1.066667² / ((2/3)²/3 + 0.4²/4) = 1.137778 / 0.188148 = 6.047244
    t = stats.welch(xs, ys)
    assert t is not None and t.effect is not None
    assert t.statistic == approx(-2.904738, abs=1e-6)
    assert t.df == approx(6.047244, abs=1e-6)
    assert t.p == approx(0.026923, abs=1e-6)  # 2·P(T_6.047 > 2.904738)
    # interval: -3 ± t(0.975; 6.047) · se = -3 ± 2.442285 · 1.032796 = -3 ± 2.522382
    assert t.effect.low == approx(-5.522382, abs=1e-5) and t.effect.high == approx(-0.477618, abs=1e-5)


def test_proportions_by_hand() -> None:
    # 90/100 vs 80/100: pooled 0.85, se = sqrt(0.85·0.15·(1/100 + 1/100)) = 0.0504975; z = 0.1/0.0504975 = 1.980295
    t = stats.two_proportions(90, 100, 80, 100)
    assert t is not None and t.effect is not None
    assert t.statistic == approx(1.980295, abs=1e-6)
    assert t.p == approx(0.047670, abs=1e-6)
    # unpooled interval: 0.1 ± 1.959964 · sqrt(0.09/100 + 0.16/100) = 0.1 ± 0.097998
    assert (t.effect.low, t.effect.high) == (approx(0.002002, abs=1e-6), approx(0.197998, abs=1e-6))
    # Wilson 45/50: centre (0.9 + z²/100)/(1 + z²/50), half-width z·sqrt(0.9·0.1/50 + z²/10000)/(1 + z²/50)
    w = stats.wilson(45, 50)
    assert w is not None and (w.low, w.high) == (approx(0.786398, abs=1e-6), approx(0.956524, abs=1e-6))


def test_mann_whitney_by_hand() -> None:
    # every x below every y: U = 0, mean 6, variance 3·4·8/12 = 8; z = (6 - 0.5)/sqrt(8) = 1.944544
    t = stats.mann_whitney([1, 2, 3], [4, 5, 6, 7])
    assert t is not None and t.statistic == 0 and t.p == approx(0.051830, abs=1e-6)
    # with ties: see test_report_by_hand (U = 3, tie-corrected variance 16.388889)


def test_quantiles() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert stats.quantile(xs, 0.5) == 50.5 and stats.quantile(xs, 0.95) == approx(95.05)
    # 95% interval for the median of 100 values: ranks 50 ∓ 1.96·5 → the 40th and 61st values (classic table)
    ci = stats.quantile_ci(xs, 0.5)
    assert ci is not None and (ci.low, ci.high) == (40.0, 61.0)
    assert stats.quantile_ci(xs[:5], 0.95) is None  # too few values for an interval on the 95th percentile


def test_sample_size() -> None:
    # 2·((1.959964 + 0.841621)·sd/δ)² with sd = 1, δ = 0.2: 2·(14.00792)² → 392.44 → 393
    assert stats.n_per_variant(1.0, 0.2) == 393


def test_against_scipy_when_present() -> None:
    sp = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    for _ in range(5):
        xs = [rng.lognormvariate(0, 1) for _ in range(rng.randint(30, 200))]
        ys = [round(rng.lognormvariate(0.1, 1.2), 1) for _ in range(rng.randint(30, 200))]
        w, ref = stats.welch(xs, ys), sp.ttest_ind(xs, ys, equal_var=False)
        assert w is not None and w.p == approx(float(ref.pvalue), rel=1e-6)
        m, ref2 = stats.mann_whitney(xs, ys), sp.mannwhitneyu(xs, ys, method="asymptotic")
        assert m is not None and m.statistic == float(ref2.statistic) and m.p == approx(float(ref2.pvalue), rel=1e-6)
    for df in (1, 2.5, 7, 40, 300):
        assert stats.t_ppf(0.975, df) == approx(float(sp.t.ppf(0.975, df)), rel=1e-8)


def test_report_by_hand() -> None:
    """A worked example through build_report: every number below is computed by hand (see comments)."""
    control = VariantData(requests=5, successes=5, latencies_ms=[100, 200, 300, 400, 500], costs_usd=[5, 7, 9, 7, 7])
    treatment = VariantData(requests=5, successes=4, latencies_ms=[50, 100, 150, 200], costs_usd=[2, 4, 4, 6])
    cfg = ExperimentConfig.model_validate({"group": "smart", "variants": {"control": {}, "treatment": {}}})
    r = build_report("x", cfg, {"control": 50, "treatment": 50},
                     ExperimentData({"control": control, "treatment": treatment}))
    c, t = r["variants"]
    assert (c["name"], t["name"]) == ("control", "treatment") and r["level"] == 0.95
    # cost: control 7 ± t(0.975; 4)·sqrt(2/5) = 7 ± 2.776445·0.632456 = 7 ± 1.755978
    assert c["cost_per_request_usd"] == 7 and c["cost_per_request_usd_ci"] == [approx(5.244022, abs=1e-5),
                                                                                  approx(8.755978, abs=1e-5)]
    # treatment 4 ± t(0.975; 3)·sqrt((8/3)/4) = 4 ± 3.182446·0.816497 = 4 ± 2.598457
    assert t["cost_per_request_usd"] == 4 and t["cost_per_request_usd_ci"] == [approx(1.401543, abs=1e-5),
                                                                                 approx(6.598457, abs=1e-5)]
    vs = t["vs_control"]
    assert vs["cost"]["p"] == approx(0.026923, abs=1e-6) and vs["cost"]["ratio"] == approx(4 / 7)
    # success: 4/5 vs 5/5; pooled 0.9, se = sqrt(0.9·0.1·(1/5 + 1/5)) = 0.189737, z = -0.2/0.189737 = -1.054093
    assert t["success_rate"] == 0.8 and c["success_rate"] == 1.0
    assert vs["success_rate"]["statistic"] == approx(-1.054093, abs=1e-6)
    assert vs["success_rate"]["p"] == approx(0.291841, abs=1e-6)
    # Wilson 4/5: centre (0.8 + z²/10)/(1 + z²/5) = 0.669655, half 0.294122
    assert t["success_rate_ci"] == [approx(0.375535, abs=1e-6), approx(0.963776, abs=1e-6)]
    # latency quantiles (linear interpolation): treatment p50 = 125, p95 = 150 + 0.85·50 = 192.5;
    # control p50 = 300, p95 = 400 + 0.8·100 = 480
    assert (t["latency_p50_ms"], t["latency_p95_ms"]) == (125, approx(192.5))
    assert (c["latency_p50_ms"], c["latency_p95_ms"]) == (300, approx(480))
    # Mann-Whitney: ranks of the treatment in the pooled sample 1, 2.5, 4, 5.5 → sum 13, U = 13 - 10 = 3;
    # two tied pairs: variance 4·5/12·(10 - 12/72) = 16.388889; z = (7 - 0.5)/4.048319 = 1.605605
    assert vs["latency"]["statistic"] == 3 and vs["latency"]["p"] == approx(0.108361, abs=1e-6)
    assert r["verdicts"][0]["outcome"] == "not-enough-data"  # 5 requests per variant: below MIN_N
