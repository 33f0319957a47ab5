"""Instants as people write them: ISO dates and times, Unix seconds, or a span relative to now
(`7d`, `24h`, `30m`, `2w`): ago for `since`/`until`, ahead for `expires_at`."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_span(text: str) -> float | None:
    """Seconds in a span like `7d`; None if `text` is not one."""
    m = _SPAN.fullmatch(text.strip().lower())
    return float(m.group(1)) * _UNIT_S[m.group(2)] if m else None


def parse_instant(value: object, *, ahead: bool = False, now: float | None = None) -> float:
    """Unix seconds of `value`; ValueError saying what is accepted. A span counts back from now, or
    forward with `ahead`. A date or time without a zone is UTC."""
    t = time.time() if now is None else now
    if isinstance(value, bool):
        raise ValueError("expected a date, a time or a span such as 7d")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("expected Unix seconds (a non-negative number)")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected an ISO date or time (2026-01-31, 2026-01-31T12:00:00Z), Unix seconds, "
                         "or a span such as 7d, 24h, 30m")
    span = parse_span(value)
    if span is not None:
        return t + span if ahead else t - span
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text[:40]}' is not an ISO date or time (2026-01-31, 2026-01-31T12:00:00Z), "
                         "Unix seconds, or a span such as 7d, 24h, 30m") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts: float | None) -> str | None:
    """Unix seconds as an ISO time in UTC (`…Z`), to the second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
