"""The in-process state backend: plain dicts, and sliding windows as rings of time buckets.

A window of W seconds is kept as 10 buckets of W/10 s; a bucket is reset lazily when the clock
reaches it again, so counting an outcome is a few arithmetic operations and summing a window
touches 10 slots, whatever the request rate.
"""

from __future__ import annotations

from typing import Any

from .meters import MeterState

BUCKETS = 10


class _Window:
    __slots__ = ("calls", "failures", "stamps", "width")

    def __init__(self, window_s: float) -> None:
        self.width = window_s / BUCKETS
        self.stamps = [-1] * BUCKETS  # the bucket number each slot currently counts
        self.calls = [0] * BUCKETS
        self.failures = [0] * BUCKETS

    def add(self, ok: bool, now: float) -> None:
        n = int(now / self.width)
        i = n % BUCKETS
        if self.stamps[i] != n:
            self.stamps[i], self.calls[i], self.failures[i] = n, 0, 0
        self.calls[i] += 1
        if not ok:
            self.failures[i] += 1

    def totals(self, now: float) -> tuple[int, int]:
        oldest = int(now / self.width) - BUCKETS + 1
        calls = failures = 0
        for i in range(BUCKETS):
            if self.stamps[i] >= oldest:
                calls += self.calls[i]
                failures += self.failures[i]
        return calls, failures


class MemoryState(MeterState):
    """One process's state. Records are stored by reference: callers may mutate what `get` returns
    for per-process bookkeeping, and `put` it to make a change visible to other replicas. The rate
    windows and budget ledgers come from `meters.MeterState`."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, Any] = {}
        self._windows: dict[str, _Window] = {}

    def get(self, key: str) -> Any | None:
        return self._records.get(key)

    def put(self, key: str, value: Any) -> None:
        self._records[key] = value

    def add(self, key: str, ok: bool, now: float, window_s: float) -> None:
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = _Window(window_s)
        w.add(ok, now)

    def totals(self, key: str, now: float) -> tuple[int, int]:
        w = self._windows.get(key)
        return (0, 0) if w is None else w.totals(now)

    def clear(self, key: str) -> None:
        self._windows.pop(key, None)
