"""Circuit breaker transitions, what counts against a deployment, and state shared through the store."""

from __future__ import annotations

from modelyard.errors import Auth, BadRequest, ContentPolicy, ContextWindowExceeded, RateLimited, Unavailable
from modelyard.resilience.breaker import CALL, CLOSED, HALF_OPEN, OPEN, PROBE, REFUSED, CircuitBreaker, counts_against
from modelyard.resilience.health import HealthTracker
from modelyard.resilience.settings import BreakerSettings
from modelyard.state import MemoryState


def breaker(**kw: object) -> CircuitBreaker:
    return CircuitBreaker(BreakerSettings(**kw), MemoryState(), ["a"])


def test_consecutive_failures_open_it_and_a_success_resets_the_count() -> None:
    b = breaker(consecutive_failures=3, min_requests=1000)
    b.failure("a", 0.0, 1)
    b.failure("a", 0.1, 2)
    assert b.state("a") == CLOSED
    b.failure("a", 0.2, 3)
    assert b.state("a") == OPEN and not b.available("a", 0.3)
    assert b.acquire("a", 0.3) == REFUSED


def test_failure_rate_over_the_window_opens_it_and_old_outcomes_age_out() -> None:
    b = breaker(consecutive_failures=100, failure_rate=0.5, min_requests=4, window_s=10)
    for t in (0.0, 0.1, 0.2):
        b.success("a", t)
    b.failure("a", 0.3, 1)
    b.failure("a", 0.4, 2)
    assert b.state("a") == CLOSED  # 2 of 5 failed: 40 %
    b.failure("a", 20.0, 3)  # the earlier calls left the 10 s window: 1 call, under min_requests
    assert b.state("a") == CLOSED
    for t in (20.1, 20.2, 20.3):
        b.success("a", t)
    b.failure("a", 20.4, 1)
    assert b.state("a") == CLOSED  # 2 of 5
    b.failure("a", 20.5, 2)
    assert b.state("a") == OPEN  # 3 of 6: 50 %


def test_half_open_allows_limited_probes_and_closes_when_they_all_succeed() -> None:
    b = breaker(consecutive_failures=1, cooldown_s=5, half_open_probes=2)
    b.failure("a", 0.0, 1)
    assert not b.available("a", 4.9) and b.available("a", 5.0)
    assert b.acquire("a", 5.0) == PROBE and b.state("a") == HALF_OPEN
    assert b.acquire("a", 5.0) == PROBE
    assert b.acquire("a", 5.0) == REFUSED and not b.available("a", 5.0)  # both probe slots taken
    b.release("a", PROBE)  # one probe was cancelled (no verdict): its slot frees up
    assert b.available("a", 5.1)
    b.success("a", 5.2)
    assert b.state("a") == HALF_OPEN
    b.success("a", 5.3)
    assert b.state("a") == CLOSED and b.acquire("a", 5.4) == CALL and b.record("a").opens == 0


def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_the_cap() -> None:
    b = breaker(consecutive_failures=1, cooldown_s=1, max_cooldown_s=3)
    b.failure("a", 0.0, 1)
    assert b.record("a").until == 1.0
    now = 1.0
    for expected in (2.0, 3.0, 3.0):
        assert b.acquire("a", now) == PROBE
        b.failure("a", now, 1)
        assert b.record("a").until == now + expected
        now += expected


def test_disabled_breaker_never_refuses() -> None:
    b = breaker(enabled=False, consecutive_failures=1)
    for i in range(10):
        b.failure("a", float(i), i + 1)
    assert b.acquire("a", 10.0) == CALL and b.available("a", 10.0)


def test_only_the_deployments_own_failures_count() -> None:
    assert counts_against(Unavailable("x")) and counts_against(RateLimited("x")) and counts_against(None)
    assert counts_against(Auth("bad upstream key", deployment="a"))  # the deployment's key is wrong
    assert not counts_against(Auth("bad client key"))  # raised by the gateway itself
    for e in (BadRequest("x", deployment="a"), ContextWindowExceeded("x", deployment="a"),
              ContentPolicy("x", deployment="a")):
        assert not counts_against(e)


def test_health_tracker_feeds_the_breaker_and_mirrors_its_state() -> None:
    h = HealthTracker(["a"], CircuitBreaker(BreakerSettings(consecutive_failures=2, cooldown_s=60), names=["a"]))
    for _ in range(5):
        h.failed("a", ContextWindowExceeded("too long", deployment="a"))
    assert h.healthy("a") and h.by_name["a"].failures == 0 and h.by_name["a"].requests == 5
    h.failed("a", Unavailable("503", deployment="a"))
    h.ok("a", 10.0)  # a success in between resets the consecutive count
    h.failed("a", Unavailable("503", deployment="a"))
    assert h.healthy("a")
    h.failed("a", Unavailable("503", deployment="a"))
    assert not h.healthy("a")
    health = h.by_name["a"]
    assert health.circuit == OPEN and health.cooldown_until > 0 and not health.healthy(health.cooldown_until - 1)


def test_replicas_sharing_a_store_open_and_close_together() -> None:
    store = MemoryState()
    one = CircuitBreaker(BreakerSettings(consecutive_failures=1, cooldown_s=1), store, ["a"])
    two = CircuitBreaker(BreakerSettings(consecutive_failures=1, cooldown_s=1), store, ["a"])
    one.failure("a", 0.0, 1)
    assert two.state("a") == OPEN and two.acquire("a", 0.5) == REFUSED
    assert two.acquire("a", 1.0) == PROBE
    two.success("a", 1.1)
    assert one.state("a") == CLOSED


def test_the_not_closed_set_follows_every_transition_and_is_shared_through_the_store() -> None:
    store = MemoryState()
    one = CircuitBreaker(BreakerSettings(consecutive_failures=1, cooldown_s=1, half_open_probes=1), store, ["a", "b"])
    two = CircuitBreaker(BreakerSettings(consecutive_failures=1, cooldown_s=1, half_open_probes=1), store, ["a"])
    assert one.not_closed == set() and two.not_closed == set()
    one.failure("a", 0.0, 1)
    assert one.not_closed == {"a"} and two.not_closed == {"a"}  # the other replica sees it too
    assert two.acquire("a", 1.0) == PROBE and one.not_closed == {"a"}  # half-open is not closed
    two.failure("a", 1.1, 1)
    assert one.state("a") == OPEN and one.not_closed == {"a"}
    one.failure("b", 1.2, 1)
    assert one.not_closed == {"a", "b"}
    assert one.acquire("a", 5.0) == PROBE
    one.success("a", 5.1)
    assert one.state("a") == CLOSED and two.not_closed == {"b"}
