"""Which errors are retried on the same deployment, and how long the gateway waits first."""

from __future__ import annotations

import random

import pytest

from modelyard.errors import (
    Auth,
    BadRequest,
    ConnectionFailed,
    ContentPolicy,
    ContextWindowExceeded,
    RateLimited,
    Timeout,
    Unavailable,
)
from modelyard.resilience.retry import backoff, error_class, retry_delay
from modelyard.resilience.settings import RetrySettings


def test_full_jitter_backoff_stays_under_an_exponential_cap() -> None:
    s = RetrySettings(backoff_base_s=0.1, backoff_max_s=1.0)
    rng = random.Random(1)
    for n, cap in ((0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (40, 1.0)):
        draws = [backoff(s, n, rng) for _ in range(500)]
        assert all(0.0 <= d <= cap for d in draws)
        assert max(draws) > 0.8 * cap and min(draws) < 0.2 * cap  # spread over the whole range


@pytest.mark.parametrize(("err", "cls"), [
    (RateLimited("x"), "rate_limit"), (Unavailable("x"), "unavailable"), (Timeout("x"), "timeout"),
    (ConnectionFailed("x"), "connection"), (ContextWindowExceeded("x"), None), (ContentPolicy("x"), None),
    (Auth("x"), None), (BadRequest("x"), None),
])
def test_error_classes(err, cls) -> None:
    assert error_class(err) == cls


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    s = RetrySettings(retry_after_max_s=10, retries={"rate_limit": 3})
    assert retry_delay(s, RateLimited("x", retry_after=2.5), 0) == 2.5
    assert retry_delay(s, RateLimited("x", retry_after=10.0), 0) == 10.0
    assert retry_delay(s, RateLimited("x", retry_after=11.0), 0) is None  # "not soon": back to the caller


def test_retries_per_error_class_are_bounded_and_others_never_retried() -> None:
    s = RetrySettings(retries={"unavailable": 2, "timeout": 0}, backoff_base_s=0.1, backoff_max_s=0.1)
    assert retry_delay(s, Unavailable("x"), 0) is not None
    assert retry_delay(s, Unavailable("x"), 1) is not None
    assert retry_delay(s, Unavailable("x"), 2) is None
    assert retry_delay(s, Timeout("x"), 0) is None
    assert retry_delay(s, ConnectionFailed("x"), 0) is None  # class left out of `retries`: 0
    for e in (Auth("x"), BadRequest("x"), ContextWindowExceeded("x"), ContentPolicy("x")):
        assert retry_delay(s, e, 0) is None
