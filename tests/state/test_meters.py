"""The memory backend's rate windows and budget ledgers."""

from __future__ import annotations

import math
import random

from modelyard.state import MemoryState


def test_rate_window_check_and_take_and_exact_wait() -> None:
    s = MemoryState()
    t1, w = s.rate_take("k", 100.0, 2, None, 10)
    assert t1 is not None and w == 0
    assert s.rate_take("k", 110.0, 2, None, 10)[0] is not None
    ticket, wait = s.rate_take("k", 130.0, 2, None, 10)
    assert ticket is None and wait == 30.0  # the first leaves at 160
    assert s.rate_used("k", 130.0) == (2, 20)
    assert s.rate_take("k", 160.5, 2, None, 10)[0] is not None  # it left
    s.rate_refund("k", t1)  # (already expired: no effect)
    assert s.rate_used("k", 160.5) == (2, 20)


def test_tokens_adjust_refund_and_never_fitting() -> None:
    s = MemoryState()
    t, _ = s.rate_take("k", 0.0, None, 100, 50)
    s.rate_adjust("k", t, 80)
    assert s.rate_used("k", 1.0) == (1, 80)
    assert s.rate_take("k", 1.0, None, 100, 30)[1] == 59.0
    assert math.isinf(s.rate_take("k", 1.0, None, 100, 101)[1])
    s.rate_refund("k", t)
    assert s.rate_used("k", 1.0) == (0, 0)
    assert s.rate_wait("k", 1.0, None, 100, 100) == 0


def test_budget_reserve_settle_and_rollover() -> None:
    s = MemoryState()
    assert not s.budget_known("key:a", "2026-12-05")
    s.budget_seed("key:a", "2026-12-05", 0.5)
    assert s.budget_reserve("key:a", "2026-12-05", 1.0, 0.4) == (True, 0.5, 0.4)
    assert s.budget_reserve("key:a", "2026-12-05", 1.0, 0.2)[0] is False  # 0.5 + 0.4 + 0.2 > 1
    assert s.budget_settle("key:a", "2026-12-05", 0.4, 0.1) == 0.6
    assert s.budget_spend("key:a", "2026-12-05") == (0.6, 0.0)
    s.budget_seed("key:a", "2026-12-05", 0.0)  # seeding a known period changes nothing
    assert s.budget_spend("key:a", "2026-12-05") == (0.6, 0.0)
    assert s.budget_reserve("key:a", "2026-12-06", 1.0, 0.9) == (True, 0.0, 0.9)  # a new day starts at 0


class _Log:
    """The rate window as the contract words it: a plain list of (when, tokens, live) entries."""

    def __init__(self) -> None:
        self.entries: list[list[float]] = []

    def live(self, now: float) -> list[list[float]]:
        return [e for e in self.entries if e[0] > now - 60.0 and e[2]]

    def used(self, now: float) -> tuple[int, int]:
        live = self.live(now)
        return len(live), int(sum(e[1] for e in live))

    def wait(self, now: float, rpm: int | None, tpm: int | None, tokens: int) -> float:
        reqs, toks = self.used(now)
        need_r = reqs + 1 - rpm if rpm else 0
        need_t = toks + tokens - tpm if tpm else 0
        if need_r <= 0 and need_t <= 0:
            return 0.0
        if tpm and tokens > tpm:
            return math.inf
        freed_r = freed_t = 0
        for ts, t, _ in self.live(now):
            freed_r, freed_t = freed_r + 1, freed_t + int(t)
            if freed_r >= need_r and freed_t >= need_t:
                return max(ts + 60.0 - now, 0.0)
        raise AssertionError("unreachable")


def test_rate_window_matches_the_plain_log_through_refunds_adjusts_and_expiry() -> None:
    """Thousands of takes, adjusts and refunds at a rate that keeps hundreds of entries in the window:
    the same admissions, usage and exact waits as a plain list of entries."""
    rng = random.Random(7)
    s, ref = MemoryState(), _Log()
    tickets: list[tuple[object, list[float]]] = []
    now = 1000.0
    for _ in range(4000):
        now += rng.choice((0.01, 0.05, 0.2, 1.0, 7.0))
        rpm, tpm, tokens = rng.choice((300, None)), rng.choice((40_000, None)), rng.randint(0, 300)
        expected = ref.wait(now, rpm, tpm, tokens)
        ticket, wait = s.rate_take("k", now, rpm, tpm, tokens)
        assert wait == expected
        if ticket is not None:
            entry = [now, float(tokens), 1.0]
            ref.entries.append(entry)
            tickets.append((ticket, entry))
        if tickets and rng.random() < 0.3:
            ticket, entry = tickets.pop(rng.randrange(len(tickets)))
            if rng.random() < 0.5:
                billed = rng.randint(0, 300)
                s.rate_adjust("k", ticket, billed)
                if entry[0] > now - 60.0 and entry[2]:
                    entry[1] = billed
            else:
                s.rate_refund("k", ticket)
                if entry[0] > now - 60.0:
                    entry[2] = 0.0
        assert s.rate_used("k", now) == ref.used(now)
