"""The per-variant report of an experiment and its plain verdict.

Every treatment is compared with control. With more than one treatment the comparisons share the 5%
error budget (Bonferroni): each is made at 1 - 0.05/k. The verdict leads with the experiment's metric
and always adds the success rate as a guardrail:

    treatment is 38% cheaper per request (95% CI 31–44%); success rate not different at 95% (p=0.41)
    treatment: cost per request not different at 95% (p=0.62; a 10% difference would have been found)
    treatment: not enough data: 840 more successful requests per variant needed to find a 10% difference
      in cost per request (now 120 and 118)

"Not enough data" uses the sample-size formula for a two-sample test at 80% power against the
smallest effect worth finding (`min_effect`: 10% for cost and latency, 0.05 points for scores on
0..1), with the spread measured so far; at least MIN_N per variant before anything is concluded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import stats
from .check import CONTROL
from .data import ExperimentData, VariantData

if TYPE_CHECKING:
    from ..config import ExperimentConfig

ALPHA = 0.05
POWER = 0.8
MIN_N = 20  # per variant, before any test is read: the normal approximations need it
DEFAULT_EFFECT = {"cost": 0.10, "latency": 0.10, "feedback": 0.05, "judge": 0.05}
_METRIC_NAMES = {"cost": "cost per request", "latency": "median latency", "feedback": "mean feedback",
                 "judge": "mean judge score"}


def build_report(name: str, cfg: ExperimentConfig, shares: dict[str, float], data: ExperimentData) -> dict[str, Any]:
    """The experiment's report: the JSON `GET /admin/experiments/{name}` returns and the CLI prints."""
    treatments = [v for v in cfg.variants if v != CONTROL]
    level = 1 - ALPHA / max(1, len(treatments))
    min_effect = cfg.min_effect or DEFAULT_EFFECT[cfg.metric]
    control = data.variants[CONTROL]
    variants = []
    verdicts = []
    for vname in cfg.variants:
        vd = data.variants[vname]
        entry = summarize(vd, level)
        entry = {"name": vname, "share_pct": round(shares.get(vname, 0.0), 4),
                 "overrides": cfg.variants[vname].model_dump(exclude_none=True), **entry}
        if vname != CONTROL:
            entry["vs_control"] = compare(vd, control, level)
            verdict = judge_variant(vname, cfg.metric, vd, control, entry["vs_control"], level, min_effect)
            entry["outcome"] = verdict["outcome"]
            verdicts.append(verdict)
        variants.append(entry)
    text = " ".join(v["text"] for v in verdicts) if verdicts else "no treatment variant"
    return {"name": name, "group": cfg.group, "unit": cfg.unit, "metric": cfg.metric, "enabled": cfg.enabled,
            "level": level, "min_effect": min_effect, "unassigned": data.unassigned, "variants": variants,
            "verdict": text, "verdicts": verdicts}


def _ci(i: stats.Interval | None) -> list[float] | None:
    return [i.low, i.high] if i is not None else None


def summarize(v: VariantData, level: float) -> dict[str, Any]:
    """One variant's numbers, each with its interval at `level` (None where there is no data)."""
    lat = sorted(v.latencies_ms)
    sr = stats.wilson(v.successes, v.requests, level)
    p50, p95 = stats.quantile_ci(lat, 0.5, level), stats.quantile_ci(lat, 0.95, level)
    cost, fb, js = (stats.mean_ci(v.costs_usd, level), stats.mean_ci(v.feedback, level),
                    stats.mean_ci(v.judge, level))
    return {
        "requests": v.requests, "successes": v.successes,
        "success_rate": sr.estimate if sr else None, "success_rate_ci": _ci(sr),
        "latency_p50_ms": stats.quantile(lat, 0.5) if lat else None, "latency_p50_ms_ci": _ci(p50),
        "latency_p95_ms": stats.quantile(lat, 0.95) if lat else None, "latency_p95_ms_ci": _ci(p95),
        "cost_per_request_usd": _mean(v.costs_usd), "cost_per_request_usd_ci": _ci(cost),
        "cost_total_usd": sum(v.costs_usd),
        "feedback_mean": _mean(v.feedback), "feedback_mean_ci": _ci(fb), "feedback_count": len(v.feedback),
        "judge_mean": _mean(v.judge), "judge_mean_ci": _ci(js), "judge_count": len(v.judge),
        "first_ts": v.first_ts, "last_ts": v.last_ts,
    }


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def compare(v: VariantData, c: VariantData, level: float) -> dict[str, Any]:
    """Each metric of variant `v` against control `c`: the effect, its interval, the test and p."""
    out: dict[str, Any] = {}
    sr = stats.two_proportions(v.successes, v.requests, c.successes, c.requests, level)
    if sr is not None and sr.effect is not None:
        out["success_rate"] = {"test": "two-proportion z", "difference": sr.effect.estimate,
                               "ci": _ci(sr.effect), "statistic": sr.statistic, "p": sr.p}
    cost_t = stats.welch(v.costs_usd, c.costs_usd, level)
    if cost_t is not None:
        ratio = stats.ratio_of_means(v.costs_usd, c.costs_usd, level)
        out["cost"] = {"test": "Welch t", "difference": cost_t.effect.estimate if cost_t.effect else None,
                       "ci": _ci(cost_t.effect), "ratio": ratio.estimate if ratio else None, "ratio_ci": _ci(ratio),
                       "statistic": cost_t.statistic, "df": cost_t.df, "p": cost_t.p}
    mw = stats.mann_whitney(v.latencies_ms, c.latencies_ms)
    if mw is not None:
        ratio = stats.ratio_of_medians(v.latencies_ms, c.latencies_ms, level)
        out["latency"] = {"test": "Mann-Whitney U", "ratio": ratio.estimate if ratio else None,
                          "ratio_ci": _ci(ratio), "statistic": mw.statistic, "p": mw.p}
    for key, xs, ys in (("feedback", v.feedback, c.feedback), ("judge", v.judge, c.judge)):
        t = stats.welch(xs, ys, level)
        if t is not None and t.effect is not None:
            out[key] = {"test": "Welch t", "difference": t.effect.estimate, "ci": _ci(t.effect),
                        "statistic": t.statistic, "df": t.df, "p": t.p}
    return out


# --- the verdict ---------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{abs(x) * 100:.0f}%"


def _level(level: float) -> str:
    return f"{level * 100:.4g}%"


def _samples(metric: str, v: VariantData) -> list[float]:
    return {"cost": v.costs_usd, "latency": v.latencies_ms, "feedback": v.feedback, "judge": v.judge}[metric]


def _what(metric: str) -> str:
    return "rated" if metric == "feedback" else "judged" if metric == "judge" else "successful"


def needed(metric: str, v: VariantData, c: VariantData, level: float, min_effect: float) -> int | None:
    """Samples per variant needed to find `min_effect` in `metric` at `level` with 80% power (None: the
    spread cannot be estimated yet)."""
    xs, ys = _samples(metric, v), _samples(metric, c)
    if len(xs) < 2 or len(ys) < 2:
        return None
    if metric == "latency":  # on log latency; Mann-Whitney needs ~π/3 times what a t-test would
        lx = [math.log(x) for x in xs if x > 0]
        ly = [math.log(y) for y in ys if y > 0]
        if len(lx) < 2 or len(ly) < 2:
            return None
        sd = math.sqrt((stats.mean_var(lx)[1] + stats.mean_var(ly)[1]) / 2)
        return max(MIN_N, math.ceil(stats.n_per_variant(sd, math.log1p(min_effect), level, POWER) * math.pi / 3))
    sd = math.sqrt((stats.mean_var(xs)[1] + stats.mean_var(ys)[1]) / 2)
    delta = min_effect * stats.mean_var(ys)[0] if metric == "cost" else min_effect
    if delta <= 0:
        return None
    return max(MIN_N, stats.n_per_variant(sd, delta, level, POWER))


def judge_variant(vname: str, metric: str, v: VariantData, c: VariantData, cmp: dict[str, Any], level: float,
                  min_effect: float) -> dict[str, Any]:
    """The verdict on one treatment: outcome (better | worse | no-difference | not-enough-data) and text."""
    alpha = 1 - level
    name = _METRIC_NAMES[metric]
    effect_text = (f"a {_pct(min_effect)} difference" if metric in ("cost", "latency")
                   else f"a difference of {min_effect:g} points")
    n_v, n_c = len(_samples(metric, v)), len(_samples(metric, c))
    result = cmp.get(metric)
    need = needed(metric, v, c, level, min_effect)
    outcome, text = "not-enough-data", ""
    if result is not None and n_v >= MIN_N and n_c >= MIN_N and result["p"] < alpha:
        outcome, text = _significant(vname, metric, result, level)
    elif need is None or n_v < MIN_N or n_c < MIN_N or (need is not None and min(n_v, n_c) < need):
        target = max(need or MIN_N, MIN_N)
        text = (f"{vname}: not enough data: {target - min(n_v, n_c)} more {_what(metric)} requests per variant "
                f"needed to find {effect_text} in {name} (now {n_v} and {n_c} for control).")
    else:
        outcome = "no-difference"
        text = (f"{vname}: {name} not different at {_level(level)} (p={result['p']:.2g}; "
                f"{effect_text} would have been found)." if result is not None else f"{vname}: {name}: no test.")
    text = text.rstrip(".") + "; " + _guardrail(cmp.get("success_rate"), v, c, level) + "."
    return {"variant": vname, "metric": metric, "outcome": outcome, "p": result["p"] if result else None,
            "needed_per_variant": need, "text": text}


def _significant(vname: str, metric: str, r: dict[str, Any], level: float) -> tuple[str, str]:
    lv = _level(level)
    if metric in ("cost", "latency"):
        ratio, (lo, hi) = r["ratio"], r["ratio_ci"]
        lower = ratio < 1
        word = ("cheaper per request" if lower else "more expensive per request") if metric == "cost" \
            else ("faster at the median" if lower else "slower at the median")
        if (lo < 1) == (hi < 1):  # the interval on one side: "31–44%"
            a, b = sorted((abs(1 - lo), abs(1 - hi)))
            ci = f"{a * 100:.0f}–{b * 100:.0f}%"
        else:  # the test (on the whole distribution) and the interval (on the mean/median) may disagree
            ci = f"change {(lo - 1) * 100:+.0f}% to {(hi - 1) * 100:+.0f}%"
        return ("better" if lower else "worse", f"{vname} is {_pct(1 - ratio)} {word} ({lv} CI {ci}, p={r['p']:.2g}).")
    d, (lo, hi) = r["difference"], r["ci"]
    word = "higher" if d > 0 else "lower"
    what = "on user feedback" if metric == "feedback" else "by the judge"
    a, b = sorted((abs(lo), abs(hi)))
    return ("better" if d > 0 else "worse",
            f"{vname} scores {abs(d):.3f} {word} {what} ({lv} CI {a:.3f}–{b:.3f} on a 0–1 scale, p={r['p']:.2g}).")


def _guardrail(r: dict[str, Any] | None, v: VariantData, c: VariantData, level: float) -> str:
    if r is None or v.requests < MIN_N or c.requests < MIN_N:
        return "success rate: not enough requests yet"
    if r["p"] >= 1 - level:
        return f"success rate not different at {_level(level)} (p={r['p']:.2g})"
    d, (lo, hi) = r["difference"], r["ci"]
    a, b = sorted((abs(lo), abs(hi)))
    return (f"success rate {abs(d) * 100:.1f} points {'higher' if d > 0 else 'lower'} "
            f"({_level(level)} CI {a * 100:.1f}–{b * 100:.1f}, p={r['p']:.2g})")
