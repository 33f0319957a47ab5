"""The in-memory state store: records by reference, sliding windows of time buckets."""

from __future__ import annotations

from modelyard.state import MemoryState


def test_window_counts_calls_and_failures_and_forgets_old_buckets() -> None:
    s = MemoryState()
    for t in (0.0, 0.5, 1.0):
        s.add("k", True, t, 10.0)
    s.add("k", False, 2.0, 10.0)
    assert s.totals("k", 2.0) == (4, 1)
    assert s.totals("k", 10.4) == (2, 1)  # the 0.0 and 0.5 buckets (0-1 s) fell out of the 10 s window
    s.add("k", False, 15.0, 10.0)
    assert s.totals("k", 15.0) == (1, 1)
    assert s.totals("k", 100.0) == (0, 0)
    s.clear("k")
    assert s.totals("k", 15.0) == (0, 0) and s.totals("other", 0.0) == (0, 0)


def test_a_bucket_reused_after_a_full_lap_starts_from_zero() -> None:
    s = MemoryState()
    s.add("k", False, 0.05, 1.0)  # bucket 0
    s.add("k", True, 1.05, 1.0)  # bucket 10: same slot, one lap later
    assert s.totals("k", 1.05) == (1, 0)


def test_records_are_kept_by_reference() -> None:
    s = MemoryState()
    rec = {"state": "closed"}
    s.put("r", rec)
    assert s.get("r") is rec and s.get("missing") is None
