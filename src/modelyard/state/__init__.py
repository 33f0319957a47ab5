"""Shared mutable state behind one small interface: breaker records and windowed outcome counters.

The hot path calls it synchronously, so every method must be O(1) and free of I/O. The default
backend is `memory.MemoryState` (one process). A networked backend (Redis) implements the same
methods over a local mirror that a background task keeps in sync: counters are pushed in batches,
and record writes (breaker transitions, which are rare) are published so that every replica opens
and closes a deployment's breaker together.
"""

from __future__ import annotations

from typing import Any, Protocol

from .memory import MemoryState


class StateStore(Protocol):
    def get(self, key: str) -> Any | None:
        """The record stored under `key`, or None. Callers keep the object: a shared backend holds one
        local object per key and updates it in place when another replica publishes a change."""

    def put(self, key: str, value: Any) -> None:
        """Store a record (a small dataclass); a shared backend publishes it to other replicas."""

    def add(self, key: str, ok: bool, now: float, window_s: float) -> None:
        """Count one outcome in `key`'s sliding window of `window_s` seconds."""

    def totals(self, key: str, now: float) -> tuple[int, int]:
        """(calls, failures) in `key`'s window as of `now`."""

    def clear(self, key: str) -> None:
        """Forget `key`'s window (a breaker that closes starts afresh)."""


__all__ = ["MemoryState", "StateStore"]
