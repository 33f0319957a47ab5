"""APGR / CPT / threshold sweep, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.eval.metrics import (
    apgr,
    at_share,
    cpt,
    evaluate_scores,
    oracle_scores,
    quantile_thresholds,
    random_metrics,
    sweep,
    threshold_for_share,
)


def _data(strong_only: int, both: int, neither: int, weak_only: int = 0) -> tuple[np.ndarray, np.ndarray]:
    s = [1.0] * strong_only + [1.0] * both + [0.0] * neither + [0.0] * weak_only
    w = [0.0] * strong_only + [1.0] * both + [0.0] * neither + [1.0] * weak_only
    return np.array(s), np.array(w)


def test_sweep_goes_from_all_strong_to_none_with_ge_then_strict_last_edge() -> None:
    scores = np.arange(10, dtype=float)
    s, w = np.ones(10), np.zeros(10)
    pts = sweep(scores, s, w)
    assert [p.strong_share for p in pts] == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert [p.threshold for p in pts] == pytest.approx([0.9 * k for k in range(11)])
    assert [p.quality for p in pts] == pytest.approx([p.strong_share for p in pts])  # strong right, weak wrong
    assert len(quantile_thresholds(scores)) == 11


def test_oracle_apgr_and_cpt_match_hand_computation() -> None:
    # 2 of 10 prompts only the strong model answers; 6 both; 2 neither → strong 0.8, weak 0.6.
    s, w = _data(2, 6, 2)
    m = evaluate_scores("oracle", oracle_scores(s, w), s, w)
    # curve: (0, .6) (.2, .8) (.2, .8) (1, .8)×8 → AUC .14 + .64 = .78 → APGR (.78 − .6) / .2 = .9
    assert m.auc == pytest.approx(0.78)
    assert m.apgr == pytest.approx(0.9)
    assert m.cpt50 == pytest.approx(0.1)  # quality .7 reached at 10 % strong calls
    assert m.cpt80 == pytest.approx(0.16)


def test_oracle_apgr_formula_without_weak_only_prompts() -> None:
    # with no weak-only prompts the oracle's APGR is 1 − p/2, p = share of strong-only prompts
    for strong_only in (18, 30, 45):
        s, w = _data(strong_only, 100 - strong_only - 10, 10)
        assert evaluate_scores("o", oracle_scores(s, w), s, w).apgr == pytest.approx(1 - strong_only / 200)
    # below one decile of strong-only prompts every quantile edge but the top is 0: the sweep only sees
    # "all strong" and "none" — the definition's resolution, kept as is
    s, w = _data(5, 85, 10)
    assert evaluate_scores("o", oracle_scores(s, w), s, w).apgr == pytest.approx(0.5)


def test_random_router_is_one_half() -> None:
    s, w = _data(18, 63, 14, 5)
    r = random_metrics(s, w)
    assert r.apgr == pytest.approx(0.5)
    assert (r.cpt50, r.cpt80) == pytest.approx((0.5, 0.8))
    # a router that cannot tell prompts apart (constant score) is random: all strong, then none
    assert evaluate_scores("c", np.zeros(len(s)), s, w).apgr == pytest.approx(0.5)
    # seeded uniform scores on a large set land near 0.5
    rng = np.random.default_rng(0)
    big_s, big_w = np.tile(s, 200), np.tile(w, 200)
    vals = [evaluate_scores("r", rng.random(len(big_s)), big_s, big_w).apgr for _ in range(5)]
    assert abs(float(np.mean(vals)) - 0.5) < 0.03


def test_reverse_oracle_is_below_random_and_equal_models_give_nan() -> None:
    s, w = _data(20, 60, 20)
    assert evaluate_scores("bad", -oracle_scores(s, w), s, w).apgr < 0.5
    same = np.ones(10)
    assert math.isnan(apgr(sweep(np.arange(10.0), same, same), 1.0, 1.0))


def test_cpt_interpolates_on_the_curve() -> None:
    s, w = np.ones(10), np.zeros(10)
    pts = sweep(np.arange(10.0), s, w)
    assert cpt(pts, 1.0, 0.0, 0.5) == pytest.approx(0.5)
    assert cpt(pts, 1.0, 0.0, 0.8) == pytest.approx(0.8)


def test_at_share_and_threshold_for_share_agree() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(200)
    s, w = rng.integers(0, 2, 200).astype(float), rng.integers(0, 2, 200).astype(float)
    for share in (0.0, 0.1, 0.3, 1.0):
        p = at_share(scores, share, s, w, np.full(200, 2.0), np.full(200, 1.0))
        assert p.strong_share == pytest.approx(share)
        assert p.cost == pytest.approx(1.0 + share)
        t = threshold_for_share(scores, share)
        assert float(np.mean(scores >= t)) == pytest.approx(share)
