"""The memory backend's rate windows and budget ledgers."""

from __future__ import annotations

import math

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
