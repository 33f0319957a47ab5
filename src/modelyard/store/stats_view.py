"""The figures the dashboard, the admin stats API and `modelyard stats` show, computed from a
`Rolling` window (live, or rebuilt from the request log): totals and rates, a time series, one line
per deployment, the routing mix per group, spend by group/deployment/key.

Every function takes the window as (`t0`, `t1`) epoch seconds and returns plain JSON-ready dicts.
Rates are fractions of requests (0..1); latencies are milliseconds; costs are USD.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from .rolling import Bucket, Cell, Rolling


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of `values`, or None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


class Totals:
    """Sums over cells."""

    __slots__ = ("cache_hits", "cancelled", "cost", "errors", "fallbacks", "in_tok", "lat", "n", "out_tok",
                 "saved", "ttft")

    def __init__(self) -> None:
        self.n = self.errors = self.cancelled = self.fallbacks = self.cache_hits = 0
        self.in_tok = self.out_tok = 0
        self.cost = self.saved = 0.0
        self.lat: list[float] = []
        self.ttft: list[float] = []

    def add(self, c: Cell) -> None:
        self.n += c.n
        self.errors += c.errors
        self.cancelled += c.cancelled
        self.fallbacks += c.fallbacks
        self.cache_hits += c.cache_hits
        self.cost += c.cost
        self.saved += c.saved
        self.in_tok += c.in_tok
        self.out_tok += c.out_tok
        self.lat.extend(c.lat)
        self.ttft.extend(c.ttft)

    def rate(self, part: int) -> float:
        return round(part / self.n, 4) if self.n else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.n, "errors": self.errors, "cancelled": self.cancelled,
            "error_rate": self.rate(self.errors), "fallbacks": self.fallbacks,
            "fallback_rate": self.rate(self.fallbacks), "cache_hits": self.cache_hits,
            "cache_hit_rate": self.rate(self.cache_hits), "cost_usd": round(self.cost, 8),
            "saved_usd": round(self.saved, 8), "input_tokens": self.in_tok, "output_tokens": self.out_tok,
            "latency_p50_ms": quantile(self.lat, 0.5), "latency_p95_ms": quantile(self.lat, 0.95),
            "latency_p99_ms": quantile(self.lat, 0.99), "ttft_p50_ms": quantile(self.ttft, 0.5),
            "ttft_p95_ms": quantile(self.ttft, 0.95),
        }


def _cells(buckets: Iterable[Bucket], t1: float) -> Iterable[tuple[tuple[str, str | None, str | None], Cell]]:
    for b in buckets:
        if b.t < t1:
            yield from b.cells.items()


def summary(r: Rolling, t0: float, t1: float) -> dict[str, Any]:
    """Totals over the window, with requests per second over the part of it the server has seen."""
    tot = Totals()
    for _, c in _cells(r.since(t0), t1):
        tot.add(c)
    seconds = max(1.0, t1 - max(t0, r.started))
    return {"window_s": round(t1 - t0), "requests_per_s": round(tot.n / seconds, 3), **tot.figures()}


def timeseries(r: Rolling, t0: float, t1: float, step_s: float) -> dict[str, Any]:
    """One point per step: requests/s, errors, p50/p95 latency, TTFT p50, cost (columns of equal length)."""
    first = t0 - t0 % step_s
    n = int((t1 - first) // step_s) + 1
    steps = [Totals() for _ in range(n)]
    for b in r.since(first):
        i = int((b.t - first) // step_s)
        if 0 <= i < n:
            for c in b.cells.values():
                steps[i].add(c)
    return {
        "step_s": step_s,
        "t": [first + i * step_s for i in range(n)],
        "requests": [s.n for s in steps],
        "requests_per_s": [round(s.n / step_s, 3) for s in steps],
        "errors": [s.errors for s in steps],
        "fallbacks": [s.fallbacks for s in steps],
        "cache_hits": [s.cache_hits for s in steps],
        "latency_p50_ms": [quantile(s.lat, 0.5) for s in steps],
        "latency_p95_ms": [quantile(s.lat, 0.95) for s in steps],
        "ttft_p50_ms": [quantile(s.ttft, 0.5) for s in steps],
        "cost_usd": [round(s.cost, 8) for s in steps],
    }


def models(r: Rolling, t0: float, t1: float) -> dict[str, Any]:
    """One line per deployment (requests that never reached one are under `null`)."""
    by: dict[str | None, Totals] = {}
    for (_, dep, _), c in _cells(r.since(t0), t1):
        tot = by.get(dep)
        if tot is None:
            tot = by[dep] = Totals()
        tot.add(c)
    rows = [{"deployment": dep, **tot.figures()} for dep, tot in by.items()]
    rows.sort(key=lambda d: (-d["requests"], str(d["deployment"])))
    return {"window_s": round(t1 - t0), "deployments": rows}


def _reason(route: str | None) -> tuple[str | None, str | None]:
    """(strategy, reason) from a routing record."""
    if not route:
        return None, None
    try:
        d = orjson.loads(route)
    except orjson.JSONDecodeError:
        return None, None
    return d.get("strategy"), d.get("reason")


def routing(r: Rolling, t0: float, t1: float) -> dict[str, Any]:
    """Per requested name: how its requests split over deployments, and which rules or reasons sent them."""
    groups: dict[str, dict[str, Any]] = {}
    for (model, dep, rule), c in _cells(r.since(t0), t1):
        g = groups.get(model)
        if g is None:
            g = groups[model] = {"requests": 0, "fallbacks": 0, "errors": 0, "deployments": {}, "rules": {}}
        g["requests"] += c.n
        g["fallbacks"] += c.fallbacks
        g["errors"] += c.errors
        name = dep or "(none)"
        g["deployments"][name] = g["deployments"].get(name, 0) + c.n
        label = rule or "-"
        entry = g["rules"].get((label, name))
        if entry is None:
            entry = g["rules"][(label, name)] = {"rule": rule, "deployment": dep, "requests": 0, "route": None}
        entry["requests"] += c.n
        if c.route is not None:
            entry["route"] = c.route
    out = []
    for model, g in groups.items():
        reasons = []
        strategy = None
        for entry in sorted(g["rules"].values(), key=lambda e: -e["requests"]):
            strat, reason = _reason(entry.pop("route"))
            strategy = strategy or strat
            reasons.append({**entry, "share": round(entry["requests"] / g["requests"], 4), "example_reason": reason})
        mix = [{"deployment": d, "requests": n, "share": round(n / g["requests"], 4)}
               for d, n in sorted(g["deployments"].items(), key=lambda kv: -kv[1])]
        out.append({"group": model, "strategy": strategy, "requests": g["requests"], "fallbacks": g["fallbacks"],
                    "errors": g["errors"], "mix": mix, "reasons": reasons[:12]})
    out.sort(key=lambda g: -g["requests"])
    return {"window_s": round(t1 - t0), "groups": out}


SPEND_BY = ("group", "deployment", "key", "team")


def spend(r: Rolling, t0: float, t1: float, by: str) -> dict[str, Any]:
    """Requests and cost per group (the requested name), deployment, virtual key or team."""
    acc: dict[str | None, list[float]] = {}
    buckets = [b for b in r.since(t0) if b.t < t1]
    if by in ("key", "team"):
        for b in buckets:
            for (key_id, team), (n, cost) in b.keys.items():
                name = key_id if by == "key" else team
                a = acc.setdefault(name, [0, 0.0, 0.0])
                a[0] += n
                a[1] += cost
    else:
        for b in buckets:
            for (model, dep, _), c in b.cells.items():
                a = acc.setdefault(model if by == "group" else dep, [0, 0.0, 0.0])
                a[0] += c.n
                a[1] += c.cost
                a[2] += c.saved
    label = {"key": "master key / no key", "team": "no team"}.get(by, "(not routed)")
    rows: list[dict[str, Any]] = []
    for name, a in acc.items():
        row: dict[str, Any] = {"name": name if name is not None else label, "requests": int(a[0]),
                               "cost_usd": round(a[1], 8)}
        if by in ("group", "deployment"):
            row["saved_usd"] = round(a[2], 8)
        rows.append(row)
    rows.sort(key=lambda d: (-d["cost_usd"], -d["requests"]))
    total = sum(a[1] for a in acc.values())
    return {"window_s": round(t1 - t0), "by": by, "total_usd": round(total, 8), "rows": rows}
