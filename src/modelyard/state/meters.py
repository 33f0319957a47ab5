"""In-process accounting state: sliding-window rate counters and budget ledgers (see
`state.AccountingStore` for the contract every backend keeps).

A rate window is an exact sliding log: one entry `[ts, requests, tokens]` per admitted request,
with running sums, so a check-and-take is O(1) amortised (an append, and a pop per entry that
leaves) and the wait it reports is exact (the moment enough old entries leave the window; worked
out only for a request that does not fit). A budget ledger is `[period, spent, reserved]` per
scope; a new period starts it at zero.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class RateWindow:
    """Requests and tokens admitted in the last `WINDOW_S` seconds for one scope."""

    __slots__ = ("entries", "requests", "tokens")

    def __init__(self) -> None:
        self.entries: deque[list[float]] = deque()
        self.requests = 0
        self.tokens = 0

    def expire(self, now: float) -> None:
        cut = now - WINDOW_S
        entries = self.entries
        while entries and entries[0][0] <= cut:
            e = entries.popleft()
            self.requests -= int(e[1])
            self.tokens -= int(e[2])
            e[1] = e[2] = 0.0  # (a late refund or adjust of it changes nothing)

    def wait(self, now: float, rpm: int | None, tpm: int | None, tokens: int) -> float:
        """Seconds until one more request of `tokens` fits (0: it fits now; inf: it never can)."""
        need_r = self.requests + 1 - rpm if rpm else 0
        need_t = self.tokens + tokens - tpm if tpm else 0
        if need_r <= 0 and need_t <= 0:
            return 0.0
        if tpm and tokens > tpm:
            return float("inf")
        freed_r = freed_t = 0
        for ts, r, t in self.entries:  # oldest first: the entries that must leave the window
            freed_r += int(r)
            freed_t += int(t)
            if freed_r >= need_r and freed_t >= need_t:
                return max(ts + WINDOW_S - now, 0.0)
        return WINDOW_S  # (unreachable: everything leaves within a window)

    def refund(self, entry: list[float]) -> None:
        """Give an admitted request's share back (it was never sent)."""
        if entry[1]:
            self.requests -= int(entry[1])
            self.tokens -= int(entry[2])
            entry[1] = entry[2] = 0.0


class MeterState:
    """The accounting half of `MemoryState` (mixed in)."""

    def __init__(self) -> None:
        self._rates: dict[str, RateWindow] = {}
        self._ledgers: dict[str, Ledger] = {}

    # --- rate windows ---------------------------------------------------------------------------
    def rate_take(self, key: str, now: float, rpm: int | None, tpm: int | None, tokens: int
                  ) -> tuple[object | None, float]:
        w = self._rates.get(key)
        if w is None:
            w = self._rates[key] = RateWindow()
        entries = w.entries
        if entries and entries[0][0] <= now - WINDOW_S:
            w.expire(now)
        if (rpm and w.requests >= rpm) or (tpm and w.tokens + tokens > tpm):  # (full: how long to wait)
            wait = w.wait(now, rpm, tpm, tokens)
            if wait > 0:
                return None, wait
        entry = [now, 1.0, float(tokens)]  # the ticket: adjust and refund change it in place
        entries.append(entry)
        w.requests += 1
        w.tokens += tokens
        return entry, 0.0

    def rate_wait(self, key: str, now: float, rpm: int | None, tpm: int | None, tokens: int) -> float:
        w = self._rates.get(key)
        if w is None:
            return 0.0
        w.expire(now)
        return w.wait(now, rpm, tpm, tokens)

    def rate_adjust(self, key: str, ticket: object, tokens: int) -> None:
        w = self._rates.get(key)
        entry: list[float] = ticket  # type: ignore[assignment]
        if w is not None and entry[1]:  # still in the window and not refunded
            w.tokens += tokens - int(entry[2])
            entry[2] = float(tokens)

    def rate_refund(self, key: str, ticket: object) -> None:
        w = self._rates.get(key)
        if w is not None:
            w.refund(ticket)  # type: ignore[arg-type]

    def rate_used(self, key: str, now: float) -> tuple[int, int]:
        w = self._rates.get(key)
        if w is None:
            return 0, 0
        w.expire(now)
        return w.requests, w.tokens

    # --- budget ledgers -----------------------------------------------------------------------
    def budget_known(self, scope: str, period: str) -> bool:
        led = self._ledgers.get(scope)
        return led is not None and led.period == period

    def budget_seed(self, scope: str, period: str, spent: float) -> None:
        if not self.budget_known(scope, period):
            self._ledgers[scope] = Ledger(period, float(spent))

    def budget_reserve(self, scope: str, period: str, limit: float, amount: float
                       ) -> tuple[bool, float, float]:
        led = self._ledgers.get(scope)
        if led is None or led.period != period:
            led = self._ledgers[scope] = Ledger(period)
        if led.spent + led.reserved + amount > limit:
            return False, led.spent, led.reserved
        led.reserved += amount
        return True, led.spent, led.reserved

    def budget_settle(self, scope: str, period: str, reserved: float, cost: float) -> float:
        led = self._ledgers.get(scope)
        if led is None or led.period != period:  # (a reservation from the previous period is simply dropped)
            led = self._ledgers[scope] = Ledger(period)
        r = led.reserved - reserved
        led.reserved = r if r > 0.0 else 0.0
        led.spent += cost
        return led.spent

    def budget_spend(self, scope: str, period: str) -> tuple[float, float]:
        led = self._ledgers.get(scope)
        if led is None or led.period != period:
            return 0.0, 0.0
        return led.spent, led.reserved


class Ledger:
    """One budget scope's money in one period."""

    __slots__ = ("period", "reserved", "spent")

    def __init__(self, period: str, spent: float = 0.0) -> None:
        self.period = period
        self.spent = spent
        self.reserved = 0.0
