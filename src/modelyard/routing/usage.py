"""Requests and tokens per deployment in the current minute: the built-in source of rate-limit
headroom for the `usage` strategy and the rpm/tpm soft filter.

Charged by the router when it picks a deployment (the estimate of prompt + expected output), so it
counts what the router sent, not what upstreams billed; the accounting layer's counters can replace
it through the `headroom` hook. Fixed one-minute windows: O(1) per charge, no timers.
"""

from __future__ import annotations

import time


class UsageMeter:
    def __init__(self) -> None:
        self._minute: dict[str, int] = {}
        self._requests: dict[str, int] = {}
        self._tokens: dict[str, int] = {}

    def charge(self, name: str, tokens: int, now: float | None = None) -> None:
        minute = int((time.time() if now is None else now) // 60)
        if self._minute.get(name) != minute:
            self._minute[name] = minute
            self._requests[name] = 0
            self._tokens[name] = 0
        self._requests[name] += 1
        self._tokens[name] += tokens

    def used(self, name: str, now: float | None = None) -> tuple[int, int]:
        """(requests, tokens) charged to `name` in the current minute."""
        minute = int((time.time() if now is None else now) // 60)
        if self._minute.get(name) != minute:
            return 0, 0
        return self._requests[name], self._tokens[name]
