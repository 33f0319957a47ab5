"""The statistics of an experiment report, in plain Python (no numpy/scipy at run time).

The distributions needed are few: the normal (the standard library's `statistics.NormalDist`) and
Student's t, whose tail is the regularised incomplete beta function, evaluated here by its continued
fraction (Lentz's method, as in Numerical Recipes §6.4). tests/experiments/test_stats.py checks both
against published table values.

What each metric uses, and why (docs/OBSERVABILITY.md#experiments):
- success rate: Wilson intervals per variant (good near 0 and 1, where the Wald interval fails) and
  the pooled two-proportion z-test, with an unpooled interval for the difference;
- cost per request and scores (feedback, judge): Welch's t-test and t intervals on the means — the
  mean is what the bill and the average quality are, the samples are large, and Welch's test does not
  assume equal variances;
- latency: skewed with a long tail, so the mean and the t-test are driven by a few slow requests.
  Mann-Whitney U (ranks, tie-corrected normal approximation) tests whether one variant tends to be
  faster; the effect is the ratio of medians with the Bonett-Price interval, computed on log latency
  (the median commutes with the log, so the interval of the log-median difference is exactly the
  interval of the median ratio); p50/p95 get distribution-free order-statistic intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_N = NormalDist()


def norm_cdf(x: float) -> float:
    return _N.cdf(x)


def norm_ppf(p: float) -> float:
    return _N.inv_cdf(p)


def z_for(level: float) -> float:
    """The two-sided critical value: 1.96 for 0.95."""
    return norm_ppf(0.5 + level / 2)


# --- Student's t -------------------------------------------------------------------------------

def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):  # the continued fraction converges fast here; else use the symmetry
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + aa * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < eps:
            break
    return h


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail probability P(|T| >= |t|) of Student's t with `df` degrees of freedom."""
    if math.isinf(df):
        return 2 * norm_cdf(-abs(t))
    return betainc(df / 2, 0.5, df / (df + t * t))


def t_ppf(p: float, df: float) -> float:
    """The p-quantile of Student's t (bisection on the tail: plenty fast for a report)."""
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1 - p, df)
    target = 2 * (1 - p)  # two-sided tail at the quantile
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) > target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_sf2(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


# --- summaries ----------------------------------------------------------------------------------

@dataclass(slots=True)
class Interval:
    estimate: float
    low: float
    high: float


def mean_var(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (n - 1), by Welford's method."""
    mean = m2 = 0.0
    for i, x in enumerate(xs, 1):
        delta = x - mean
        mean += delta / i
        m2 += delta * (x - mean)
    return mean, (m2 / (len(xs) - 1) if len(xs) > 1 else 0.0)


def mean_ci(xs: Sequence[float], level: float = 0.95) -> Interval | None:
    """The mean with its t interval (None for fewer than 2 values)."""
    n = len(xs)
    if n < 2:
        return None
    m, v = mean_var(xs)
    half = t_ppf(0.5 + level / 2, n - 1) * math.sqrt(v / n)
    return Interval(m, m - half, m + half)


def wilson(k: int, n: int, level: float = 0.95) -> Interval | None:
    """A proportion k/n with its Wilson score interval."""
    if n == 0:
        return None
    z = z_for(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def quantile(sorted_xs: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default, type 7)."""
    n = len(sorted_xs)
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_xs[lo] + (h - lo) * (sorted_xs[hi] - sorted_xs[lo])


def quantile_ci(sorted_xs: Sequence[float], q: float, level: float = 0.95) -> Interval | None:
    """The q-quantile with a distribution-free interval [x_(l), x_(u)]: the number of values below the
    true quantile is Binomial(n, q), so l and u are n·q ∓ z·sqrt(n·q·(1-q)) (normal approximation).
    None when the sample is too small for the interval to stay inside it."""
    n = len(sorted_xs)
    if n == 0:
        return None
    z = z_for(level)
    spread = z * math.sqrt(n * q * (1 - q))
    lo, hi = math.floor(n * q - spread), math.ceil(n * q + spread) + 1  # 1-based ranks
    if lo < 1 or hi > n:
        return None
    return Interval(quantile(sorted_xs, q), sorted_xs[lo - 1], sorted_xs[hi - 1])


def median_se(sorted_xs: Sequence[float]) -> float:
    """The standard error of the sample median (Bonett & Price 2002): the spread of the order
    statistics c and n-c+1, c = round((n+1)/2 - sqrt(n)), over the normal quantile of their coverage."""
    n = len(sorted_xs)
    c = max(1, round((n + 1) / 2 - math.sqrt(n)))
    tail = norm_cdf((c - 1 + 0.5 - n / 2) / (math.sqrt(n) / 2))  # P(Binomial(n, 1/2) <= c - 1)
    z = norm_ppf(1 - tail)
    return (sorted_xs[n - c] - sorted_xs[c - 1]) / (2 * z)


# --- comparisons: treatment vs control -----------------------------------------------------------

@dataclass(slots=True)
class Test:
    statistic: float
    p: float
    effect: Interval | None = None  # the difference (or ratio) with its interval
    df: float | None = None


def two_proportions(k1: int, n1: int, k0: int, n0: int, level: float = 0.95) -> Test | None:
    """Variant (k1/n1) vs control (k0/n0): pooled z-test; effect = p1 - p0 with an unpooled interval."""
    if n1 == 0 or n0 == 0:
        return None
    p1, p0 = k1 / n1, k0 / n0
    pooled = (k1 + k0) / (n1 + n0)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    z = (p1 - p0) / se0 if se0 > 0 else 0.0
    p = 2 * norm_cdf(-abs(z)) if se0 > 0 else 1.0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    half = z_for(level) * se
    return Test(z, p, Interval(p1 - p0, p1 - p0 - half, p1 - p0 + half))


def welch(xs: Sequence[float], ys: Sequence[float], level: float = 0.95) -> Test | None:
    """Variant xs vs control ys: Welch's t-test; effect = mean difference with its t interval."""
    n1, n0 = len(xs), len(ys)
    if n1 < 2 or n0 < 2:
        return None
    m1, v1 = mean_var(xs)
    m0, v0 = mean_var(ys)
    a, b = v1 / n1, v0 / n0
    se = math.sqrt(a + b)
    diff = m1 - m0
    if se == 0:
        return Test(0.0 if diff == 0 else math.copysign(math.inf, diff), 1.0 if diff == 0 else 0.0,
                    Interval(diff, diff, diff), float(n1 + n0 - 2))
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n0 - 1))
    t = diff / se
    half = t_ppf(0.5 + level / 2, df) * se
    return Test(t, t_sf2(t, df), Interval(diff, diff - half, diff + half), df)


def ratio_of_means(xs: Sequence[float], ys: Sequence[float], level: float = 0.95) -> Interval | None:
    """mean(xs) / mean(ys) with a delta-method interval on the log scale (stays positive)."""
    n1, n0 = len(xs), len(ys)
    if n1 < 2 or n0 < 2:
        return None
    m1, v1 = mean_var(xs)
    m0, v0 = mean_var(ys)
    if m1 <= 0 or m0 <= 0:
        return None
    se = math.sqrt(v1 / (n1 * m1 * m1) + v0 / (n0 * m0 * m0))
    r, z = m1 / m0, z_for(level)
    return Interval(r, r * math.exp(-z * se), r * math.exp(z * se))


def ratio_of_medians(xs: Sequence[float], ys: Sequence[float], level: float = 0.95) -> Interval | None:
    """median(xs) / median(ys) with the Bonett-Price interval of the difference of log medians."""
    if len(xs) < 2 or len(ys) < 2 or min(xs) <= 0 or min(ys) <= 0:
        return None
    lx, ly = sorted(math.log(x) for x in xs), sorted(math.log(y) for y in ys)
    d = quantile(lx, 0.5) - quantile(ly, 0.5)
    half = z_for(level) * math.sqrt(median_se(lx) ** 2 + median_se(ly) ** 2)
    return Interval(math.exp(d), math.exp(d - half), math.exp(d + half))


def mann_whitney(xs: Sequence[float], ys: Sequence[float]) -> Test | None:
    """Mann-Whitney U of xs vs ys: normal approximation with tie correction and continuity
    correction; statistic = U of xs (n1·n0/2 when neither tends to be larger)."""
    n1, n0 = len(xs), len(ys)
    if n1 == 0 or n0 == 0:
        return None
    pooled = sorted([(x, 1) for x in xs] + [(y, 0) for y in ys])
    rank_sum, ties, i, n = 0.0, 0.0, 0, n1 + n0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1  # midrank of the tied run
        rank_sum += rank * sum(1 for k in range(i, j + 1) if pooled[k][1])
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    u = rank_sum - n1 * (n1 + 1) / 2
    mu = n1 * n0 / 2
    var = n1 * n0 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return Test(u, 1.0)
    z = (abs(u - mu) - 0.5) / math.sqrt(var)
    return Test(u, min(1.0, 2 * norm_cdf(-max(z, 0.0))))


def n_per_variant(sd: float, delta: float, level: float = 0.95, power: float = 0.8) -> int:
    """Requests per variant for a two-sample test of means at `level` to find a difference `delta`
    with probability `power`: 2·((z_α/2 + z_β)·sd/δ)²."""
    if delta <= 0:
        return 0
    return math.ceil(2 * ((z_for(level) + norm_ppf(power)) * sd / delta) ** 2)
