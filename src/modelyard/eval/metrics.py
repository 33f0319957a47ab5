"""Router metrics for a strong/weak pair, defined as RouteLLM's evaluation defines them.

A router gives every prompt a score: its preference for the strong model. The threshold sweep:

- thresholds are the 11 edges of 10 equal-count bins of the scores (the 0, 10, …, 100 % quantiles,
  linear interpolation, duplicates kept);
- at each edge t but the last, prompts with score ≥ t go to the strong model; at the last edge
  (the maximum), those with score > t do — so the sweep runs from 100 % strong calls to 0 %;
- each threshold gives a point (strong-call share, mean quality of the routed answers).

Sorted by share, the points give a cost-quality curve. AUC is its trapezoid area (share as a
fraction); APGR, the average performance gap recovered, is `(AUC − weak·span) / (strong·span −
weak·span)` where `weak`/`strong` are the mean qualities of always-weak/always-strong and `span` is the
range of shares the curve covers (normally 1). CPT(x %) — call-performance threshold — is the
strong-call share at which the curve reaches `weak + x·(strong − weak)`, linearly interpolated on the
curve's points in share order. A random router scores 0.5 in expectation; always-strong/always-weak
are single points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_THRESHOLDS = 10


@dataclass(slots=True)
class CurvePoint:
    threshold: float
    strong_share: float  # fraction of prompts sent to the strong model
    quality: float  # mean quality of the answers the routing picks
    cost: float | None = None  # mean cost per prompt, when costs are known


@dataclass(slots=True)
class RouterMetrics:
    name: str
    apgr: float
    auc: float
    cpt50: float  # strong-call share (fraction) that recovers 50 % of the gap
    cpt80: float
    points: list[CurvePoint]


def quantile_thresholds(scores: np.ndarray, n: int = N_THRESHOLDS) -> np.ndarray:
    """The n+1 edges of n equal-count bins (what pandas.qcut(..., retbins=True) returns, ties allowed)."""
    return np.quantile(np.asarray(scores, dtype=np.float64), np.linspace(0.0, 1.0, n + 1))


def sweep(scores: np.ndarray, strong: np.ndarray, weak: np.ndarray, *, n: int = N_THRESHOLDS,
          strong_cost: np.ndarray | None = None, weak_cost: np.ndarray | None = None) -> list[CurvePoint]:
    """One point per quantile threshold (see the module docstring for the ≥ / > rule)."""
    scores = np.asarray(scores, dtype=np.float64)
    edges = quantile_thresholds(scores, n)
    points: list[CurvePoint] = []
    for i, t in enumerate(edges):
        sel = scores >= t if i != len(edges) - 1 else scores > t
        q = float(np.where(sel, strong, weak).mean())
        c = None
        if strong_cost is not None and weak_cost is not None:
            c = float(np.where(sel, strong_cost, weak_cost).mean())
        points.append(CurvePoint(float(t), float(sel.mean()), q, c))
    return points


def _sorted(points: Sequence[CurvePoint]) -> tuple[np.ndarray, np.ndarray]:
    order = sorted(range(len(points)), key=lambda i: points[i].strong_share)
    x = np.array([points[i].strong_share for i in order])
    y = np.array([points[i].quality for i in order])
    return x, y


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0)) if len(x) > 1 else 0.0


def auc(points: Sequence[CurvePoint]) -> float:
    x, y = _sorted(points)
    return _trapezoid(y, x)


def apgr(points: Sequence[CurvePoint], strong_quality: float, weak_quality: float) -> float:
    """Average performance gap recovered; nan when strong and weak are equally good."""
    x, _ = _sorted(points)
    span = float(x[-1] - x[0]) if len(x) else 0.0
    gap = (strong_quality - weak_quality) * span
    if gap == 0:
        return float("nan")
    return (auc(points) - weak_quality * span) / gap


def cpt(points: Sequence[CurvePoint], strong_quality: float, weak_quality: float, fraction: float) -> float:
    """Strong-call share needed to reach `fraction` of the weak→strong quality gap."""
    x, y = _sorted(points)
    target = weak_quality + fraction * (strong_quality - weak_quality)
    return float(np.interp(target, y, x))


def evaluate_scores(name: str, scores: np.ndarray, strong: np.ndarray, weak: np.ndarray, *,
                    strong_cost: np.ndarray | None = None, weak_cost: np.ndarray | None = None,
                    n: int = N_THRESHOLDS) -> RouterMetrics:
    """All metrics of one router's scores against per-prompt strong/weak qualities."""
    strong = np.asarray(strong, dtype=np.float64)
    weak = np.asarray(weak, dtype=np.float64)
    pts = sweep(scores, strong, weak, n=n, strong_cost=strong_cost, weak_cost=weak_cost)
    s, w = float(strong.mean()), float(weak.mean())
    return RouterMetrics(name, apgr(pts, s, w), auc(pts), cpt(pts, s, w, 0.5), cpt(pts, s, w, 0.8), pts)


def random_metrics(strong: np.ndarray, weak: np.ndarray) -> RouterMetrics:
    """The random router's expected curve: quality rises linearly with the strong share."""
    s, w = float(np.mean(strong)), float(np.mean(weak))
    pts = [CurvePoint(float("nan"), k / N_THRESHOLDS, w + (s - w) * k / N_THRESHOLDS)
           for k in range(N_THRESHOLDS + 1)]
    return RouterMetrics("random", apgr(pts, s, w), auc(pts), cpt(pts, s, w, 0.5),
                         cpt(pts, s, w, 0.8), pts)


def oracle_scores(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """What an all-knowing router would score: the strong model's true advantage on the prompt."""
    return np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)


def at_share(scores: np.ndarray, share: float, strong: np.ndarray, weak: np.ndarray,
             strong_cost: np.ndarray | None = None, weak_cost: np.ndarray | None = None) -> CurvePoint:
    """Quality (and cost) when exactly round(share·n) top-scored prompts go strong (ties: file order)."""
    scores = np.asarray(scores, dtype=np.float64)
    k = round(share * len(scores))
    order = np.argsort(-scores, kind="stable")
    sel = np.zeros(len(scores), dtype=bool)
    sel[order[:k]] = True
    q = float(np.where(sel, strong, weak).mean())
    c = float(np.where(sel, strong_cost, weak_cost).mean()) if strong_cost is not None and weak_cost is not None \
        else None
    t = float(scores[order[k - 1]]) if k > 0 else float("inf")
    return CurvePoint(t, k / len(scores), q, c)


def threshold_for_share(scores: np.ndarray, share: float) -> float:
    """The score threshold (route strong when score ≥ it) that sends `share` of these prompts strong."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    k = round(share * len(scores))
    if k <= 0:
        return float(np.nextafter(scores[0], np.inf))
    return float(scores[min(k, len(scores)) - 1])
