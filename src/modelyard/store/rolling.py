"""A rolling window of request figures in memory: what the dashboard and `modelyard stats` read.

The gateway calls `Rolling.observe(row)` for every finished request (it is one of
`gateway.observers`), so it only counts: a dict lookup and a few additions into the current
time bucket, plus a latency kept in a bounded sample. Percentiles, rates and mixes are computed when
someone asks (stats_view.py), never per request. Buckets older than the span are dropped, so memory
stays bounded whatever the traffic.

The same class re-aggregates rows read back from the request log (store/stats.py) with coarser
buckets, so a window longer than the live span is computed by the same code.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from .rows import Row

SAMPLES_PER_CELL = 48  # latencies kept per (group, deployment, rule) per bucket: percentiles from a sample


class Cell:
    """Counters for one (requested model, deployment, rule) in one bucket."""

    __slots__ = ("cache_hits", "cancelled", "cost", "errors", "fallbacks", "in_tok", "lat", "n", "out_tok",
                 "route", "saved", "ttft")

    def __init__(self) -> None:
        self.n = 0
        self.errors = 0
        self.cancelled = 0
        self.fallbacks = 0
        self.cache_hits = 0
        self.cost = 0.0
        self.saved = 0.0
        self.in_tok = 0
        self.out_tok = 0
        self.lat: list[float] = []
        self.ttft: list[float] = []
        self.route: str | None = None  # the last routing record seen (its reason is shown as an example)


class Bucket:
    __slots__ = ("cells", "keys", "t")

    def __init__(self, t: float) -> None:
        self.t = t  # start time (epoch seconds)
        self.cells: dict[tuple[str, str | None, str | None], Cell] = {}
        self.keys: dict[tuple[str | None, str | None], list[float]] = {}  # (key id, team) -> [requests, cost]


def rule_of(route: str | None) -> str | None:
    """The rule that decided, read from the routing record's JSON without parsing it: `"rule"` is its
    fourth field, so this looks at the first couple of hundred characters only."""
    if not route:
        return None
    i = route.find('"rule":"', 0, 400)
    if i < 0:
        return None
    j = route.find('"', i + 8)
    return route[i + 8:j] if j > 0 else None


def had_fallback(route: str | None) -> bool:
    """Whether the request was served after another deployment failed: `"fallbacks"` is near the
    end of the record, so this searches from the end."""
    if not route:
        return False
    i = route.rfind('"fallbacks":[')
    return i >= 0 and route[i + 13:i + 14] != "]"


class Rolling:
    """Time buckets of `bucket_s` seconds covering the last `span_s` seconds."""

    def __init__(self, span_s: float = 900.0, bucket_s: float = 1.0) -> None:
        self.span_s = span_s
        self.bucket_s = bucket_s
        self.started = time.time()
        self.buckets: deque[Bucket] = deque()
        self._current: Bucket | None = None
        self._until = 0.0  # end of the current bucket
        # The last routing record read and what it said (rule, fallback): a group whose decisions the
        # router logs from its cache hands the same string object request after request.
        self._route: str | None = None
        self._read: tuple[str | None, bool] = (None, False)

    # --- recording (the request path) ----------------------------------------------------------
    def observe(self, row: Row) -> None:
        """A gateway observer: count one finished request."""
        # One unpacking of the columns read, id to saved_usd (Row's order; a slice of the row is a plain
        # tuple, which unpacks without an iterator): it runs for every request.
        (ts, model, deployment, _, status, _, _, in_tok, out_tok, _, _, cost, latency_ms, ttft_ms, _, _, _, route,
         key_id, team, cache, saved) = row[1:23]
        if route is not self._route:
            self._route, self._read = route, (rule_of(route), had_fallback(route))
        rule, fallback = self._read
        self.add(ts, model, deployment, status, cost, latency_ms, ttft_ms, cache, saved, key_id, team, rule, fallback,
                 in_tok, out_tok, route)

    def add(self, ts: float, model: str, deployment: str | None, status: int, cost: float, latency_ms: float | None,
            ttft_ms: float | None, cache: str | None, saved: float, key_id: str | None, team: str | None,
            rule: str | None, fallback: bool, in_tok: int = 0, out_tok: int = 0, route: str | None = None) -> None:
        b = self._current
        if b is None or ts >= self._until:
            b = self._roll(ts)
        cell = b.cells.get((model, deployment, rule))
        if cell is None:
            cell = b.cells[(model, deployment, rule)] = Cell()
        cell.n += 1
        if status == 499:
            cell.cancelled += 1
        elif status >= 400:
            cell.errors += 1
        if fallback:
            cell.fallbacks += 1
        if cache is not None and cache != "miss":
            cell.cache_hits += 1
        cell.cost += cost
        cell.saved += saved
        cell.in_tok += in_tok
        cell.out_tok += out_tok
        if latency_ms is not None and status < 400 and len(cell.lat) < SAMPLES_PER_CELL:
            cell.lat.append(latency_ms)
        if ttft_ms is not None and len(cell.ttft) < SAMPLES_PER_CELL:
            cell.ttft.append(ttft_ms)
        if route is not None:
            cell.route = route
        spend = b.keys.get((key_id, team))
        if spend is None:
            b.keys[(key_id, team)] = [1, cost]
        else:
            spend[0] += 1
            spend[1] += cost

    def _roll(self, ts: float) -> Bucket:
        """Start the bucket holding `ts` (a late row lands in the current one) and drop expired ones."""
        if self._current is not None and ts < self._until:
            return self._current
        start = ts - ts % self.bucket_s
        b = self._current = Bucket(start)
        self._until = start + self.bucket_s
        self.buckets.append(b)
        horizon = ts - self.span_s
        while self.buckets and self.buckets[0].t + self.bucket_s <= horizon:
            self.buckets.popleft()
        return b

    # --- reading -------------------------------------------------------------------------------
    def since(self, t0: float) -> Iterator[Bucket]:
        """Buckets that end after `t0`, oldest first (a snapshot: safe while requests keep coming)."""
        for b in list(self.buckets):
            if b.t + self.bucket_s > t0:
                yield b
