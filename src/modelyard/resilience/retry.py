"""The retry rules: which errors may be retried on the same deployment, and how long to wait.

Waiting is the last resort: the attempt plan (attempt_plan.py) always moves to another deployment
first, and only comes back to a failed one, after `delay`, once the others are used up.
"""

from __future__ import annotations

import random

from ..errors import ConnectionFailed, ModelyardError, RateLimited, Timeout, Unavailable
from .settings import ErrorClass, RetrySettings

_CLASSES: tuple[tuple[type[ModelyardError], ErrorClass], ...] = (
    (RateLimited, "rate_limit"), (Unavailable, "unavailable"), (Timeout, "timeout"),
    (ConnectionFailed, "connection"),
)


def error_class(e: ModelyardError) -> ErrorClass | None:
    """The retry class of an error, or None for errors that are never retried on the same deployment."""
    if not e.retryable:
        return None
    for cls, name in _CLASSES:
        if isinstance(e, cls):
            return name
    return None


def backoff(settings: RetrySettings, retry_number: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(max, base · 2^n)] for the n-th retry (n from 0), so that
    clients failing together do not retry together."""
    cap = min(settings.backoff_max_s, settings.backoff_base_s * (2 ** min(retry_number, 30)))
    return (rng or random).uniform(0.0, cap)


def retry_delay(settings: RetrySettings, e: ModelyardError, retry_number: int,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retrying `e` on the same deployment, or None if it must not be.

    The upstream's Retry-After wins over the backoff when given; one longer than
    `retry_after_max_s` means "not soon", so the error goes back to the caller instead.
    """
    cls = error_class(e)
    if cls is None or retry_number >= settings.retries.get(cls, 0):
        return None
    ra = getattr(e, "retry_after", None)
    if ra is not None:
        return ra if ra <= settings.retry_after_max_s else None
    return backoff(settings, retry_number, rng)
