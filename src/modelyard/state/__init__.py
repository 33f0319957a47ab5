"""Shared mutable state behind one small interface: breaker records and windowed outcome counters.

The hot path calls it synchronously, so every method must be O(1) and free of I/O. The default
backend is `memory.MemoryState` (one process). `redis.RedisState` (`state: redis://…`) implements
the same methods over a local mirror that a background task keeps in sync: counters are pushed in
batches, and record writes (breaker transitions, which are rare) are written to Redis and polled so
that every replica opens and closes a deployment's breaker together; admission's rate takes and
budget reservations are one script call per request (accounting/shared.py, state/scripts.py).

`AccountingStore` is the money and rate half (accounting/limits.py, accounting/budgets.py). Each of
its methods is ONE atomic step on one key, so a shared backend implements each as one Lua script
(one round trip, EVALSHA) and N replicas enforce one limit and one budget together:

- `rate_take` — sliding log in a sorted set `rate:<key>` (score = time, member = ticket id) plus a
  hash of per-ticket tokens: ZREMRANGEBYSCORE the expired, ZCARD/sum, and either ZADD + return the
  ticket or return the exact wait (oldest member that must leave + 60 s − now).
- `rate_adjust` / `rate_refund` — HSET / ZREM of one ticket. `rate_wait` / `rate_used` are the
  read-only halves (routing's headroom), which a backend may answer from a local mirror.
- `budget_reserve` — hash `budget:<scope>` {period, spent, reserved}: reset when `period` differs,
  then reserve only if spent + reserved + amount <= limit. `budget_settle` — reserved −= r,
  spent += cost (HINCRBYFLOAT). `budget_seed` — HSETNX-style: set spent for the period only if the
  hash does not hold that period yet (the request log's sum, read once at start-up / first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .memory import MemoryState
from .settings import StateSettings

if TYPE_CHECKING:
    from .redis import RedisState


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


class AccountingStore(Protocol):
    def rate_take(self, key: str, now: float, rpm: int | None, tpm: int | None, tokens: int
                  ) -> tuple[object | None, float]:
        """Check-and-take one request of `tokens` in `key`'s 60 s sliding window: (ticket, 0.0) when
        it fits under `rpm` and `tpm` (None: no limit), else (None, seconds until it would fit;
        inf when `tokens` alone exceeds `tpm`). Nothing is counted for a refusal."""

    def rate_wait(self, key: str, now: float, rpm: int | None, tpm: int | None, tokens: int) -> float:
        """Like `rate_take` without taking: 0.0 when the request would fit now."""

    def rate_adjust(self, key: str, ticket: object, tokens: int) -> None:
        """Recount a taken request's tokens (the estimate replaced by what the provider billed)."""

    def rate_refund(self, key: str, ticket: object) -> None:
        """Give a taken request back (it was never sent upstream)."""

    def rate_used(self, key: str, now: float) -> tuple[int, int]:
        """(requests, tokens) in `key`'s window as of `now`."""

    def budget_known(self, scope: str, period: str) -> bool:
        """True once the scope's ledger holds `period` (seeded or used)."""

    def budget_seed(self, scope: str, period: str, spent: float) -> None:
        """Start the scope's `period` at `spent` unless the ledger already holds that period."""

    def budget_reserve(self, scope: str, period: str, limit: float, amount: float
                       ) -> tuple[bool, float, float]:
        """Reserve `amount` if spent + reserved + amount <= limit: (ok, spent, reserved after).
        A ledger still on an older period restarts at zero first (rollover)."""

    def budget_settle(self, scope: str, period: str, reserved: float, cost: float) -> float:
        """Replace a reservation by the real cost (release = settle with cost 0); the spend after."""

    def budget_spend(self, scope: str, period: str) -> tuple[float, float]:
        """(spent, reserved) of the scope in `period`."""


def open_state(settings: StateSettings) -> MemoryState | RedisState:
    """The backend `state:` names: memory (one process) or Redis (state/redis.py, the `redis` extra)."""
    if not settings.shared:
        return MemoryState()
    from .redis import RedisState

    return RedisState(settings)


async def start_state(store: object) -> None:
    """Connect a networked backend (memory has nothing to start)."""
    start = getattr(store, "start", None)
    if start is not None:
        await start()


async def close_state(store: object) -> None:
    """Flush and disconnect a networked backend."""
    close = getattr(store, "close", None)
    if close is not None:
        await close()


__all__ = ["AccountingStore", "MemoryState", "StateStore", "close_state", "open_state", "start_state"]
