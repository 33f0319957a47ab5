"""Threshold calibration: pick the decision threshold that yields a target share of strong-model
calls, or a target mean cost per request, on a set of prompts' predicted qualities.

The prompts are either a data file (`modelyard calibrate --data`, the honest choice: held-out traffic
like the one to be routed) or the predictions stored in the router file at training time (what a
gateway config's `strong_share:` uses at load, with no data at hand).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .base import choose_many


def _bisect(fn_decreasing: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Smallest t in [lo, hi] with f(t) ≤ target, for f non-increasing in t."""
    f = fn_decreasing
    for _ in range(64):
        mid = (lo + hi) / 2
        if f(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def threshold_for_strong_share(Q: np.ndarray, costs: Sequence[float] | np.ndarray, strong_index: int,
                               share: float) -> float:
    """Threshold under which about `share` of these prompts go to the strong model.

    With a pair this is exact: the preference score of the round(share·n)-th most strong-leaning
    prompt (ties can push the realised share a little above the target).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError("strong share must be between 0 and 1")
    Q = np.asarray(Q, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if Q.shape[1] == 2:
        other = 1 - strong_index
        pref = np.sort(Q[:, strong_index] - Q[:, other])[::-1]
        k = round(share * len(pref))
        if c[strong_index] <= c[other]:  # the "strong" model is not the dear one: the rule cannot steer to it
            raise ValueError("the strong model must cost more than the weak one to calibrate a strong share")
        if k <= 0:
            return float(np.nextafter(pref[0], np.inf))
        return float(pref[min(k, len(pref)) - 1])
    span = float(np.ptp(Q)) + 1.0

    def strong_share(t: float) -> float:
        return float((choose_many(Q, c, threshold=t) == strong_index).mean())

    return _bisect(strong_share, share, -span, span)


def threshold_for_budget(Q: np.ndarray, costs: Sequence[float], budget: float) -> float:
    """Smallest threshold whose mean cost per prompt is within `budget` (USD)."""
    Q = np.asarray(Q, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if budget < c.min():
        raise ValueError(f"budget {budget:g} is below the cheapest model's cost {c.min():g}")
    span = float(np.ptp(Q)) + 1.0

    def mean_cost(t: float) -> float:
        return float(c[choose_many(Q, c, threshold=t)].mean())

    return _bisect(mean_cost, budget, -span, span)


def costs_vector(models: Sequence[str], costs: dict[str, float], strong: str | None = None) -> np.ndarray:
    """Per-model costs in router order; unknown costs: the strong model 1, the others 0 (so the
    threshold rule still prefers every other model over the strong one)."""
    if all(m in costs for m in models):
        return np.array([costs[m] for m in models], dtype=np.float64)
    return np.array([1.0 if m == strong else 0.0 for m in models], dtype=np.float64) if strong else \
        np.arange(len(models), 0, -1, dtype=np.float64)
