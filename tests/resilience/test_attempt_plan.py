"""The attempt plan: order of deployments, typed fallbacks, same-deployment retries, attempt and
deadline bounds, breakers — driven directly, outcome by outcome."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.errors import (
    Auth,
    BadRequest,
    ContentPolicy,
    ContextWindowExceeded,
    ModelyardError,
    RateLimited,
    Timeout,
    Unavailable,
)
from modelyard.resilience.attempt_plan import AttemptPlan
from modelyard.resilience.breaker import CircuitBreaker
from modelyard.resilience.health import HealthTracker
from modelyard.resilience.policy import Policy
from modelyard.resilience.settings import BreakerSettings, RetrySettings
from modelyard.types import RouteDecision

FAST = RetrySettings(max_attempts=10, backoff_base_s=0.001, backoff_max_s=0.002)


def dep(name: str, window: int = 128_000) -> Deployment:
    card = dataclasses.replace(unknown_card(name, "openai"), context_window=window)
    return Deployment(name=name, provider="openai", model=name, card=card)


A, B, C, BIG, SAFE = dep("a", 8000), dep("b", 8000), dep("c", 32_000), dep("big", 200_000), dep("safe")
ALL = [A, B, C, BIG, SAFE]


def plan(chain: list[Deployment], retry: RetrySettings = FAST, timeout_s: float = 5.0,
         health: HealthTracker | None = None, **kw: Any) -> AttemptPlan:
    policy = Policy(route="g", retry=retry, timeout_s=timeout_s, timeouts={}, **kw)
    return AttemptPlan(chain, RouteDecision(model="g", deployment=chain[0].name, strategy="first-healthy"),
                       health or HealthTracker([d.name for d in ALL]), policy)


async def walk(p: AttemptPlan, outcomes: dict[str, list[ModelyardError | None]]) -> tuple[list[str], Any]:
    """Drive the plan: each deployment answers with its next scripted outcome (None: success)."""
    called: list[str] = []
    while True:
        try:
            d, token = await p.next()
        except ModelyardError as e:
            return called, e
        p.health.breaker.release(d.name, token)
        called.append(d.name)
        script = outcomes.get(d.name) or [None]
        e = script.pop(0) if len(script) > 1 else script[0]
        if e is None:
            p.served(d)
            return called, d.name
        try:
            p.failed(d, e)
        except ModelyardError as raised:
            return called, raised


async def test_moves_on_before_retrying_and_retries_only_transient_errors() -> None:
    p = plan([A, B])
    called, result = await walk(p, {"a": [Unavailable("503"), None], "b": [Timeout("slow"), None]})
    assert called[:2] == ["a", "b"]  # the other deployment before any retry
    assert called[2] in ("a", "b") and result == called[2]  # then whichever retry is due first (jitter)
    assert p.decision.fallbacks == ["a", "b"] and p.decision.attempts == 3 and p.decision.deployment == result


async def test_max_attempts_bounds_every_call_including_retries() -> None:
    p = plan([A, B], retry=FAST.model_copy(update={"max_attempts": 4}))
    called, result = await walk(p, {"a": [Unavailable("503")], "b": [Unavailable("503")]})
    assert len(called) == 4 and isinstance(result, Unavailable)


async def test_same_deployment_retries_follow_the_per_class_limits() -> None:
    retry = FAST.model_copy(update={"retries": {"unavailable": 2, "timeout": 0}})
    called, _ = await walk(plan([A], retry=retry), {"a": [Unavailable("503")]})
    assert called == ["a", "a", "a"]
    called, _ = await walk(plan([A], retry=retry), {"a": [Timeout("slow")]})
    assert called == ["a"]


@pytest.mark.parametrize("err", [Auth("bad key", deployment="a"), BadRequest("bad param", deployment="a")])
async def test_non_retryable_errors_stop_everything(err) -> None:
    called, result = await walk(plan([A, B]), {"a": [err]})
    assert called == ["a"] and result is err


async def test_retry_after_waits_and_a_long_one_is_not_waited_for() -> None:
    t0 = time.monotonic()
    called, result = await walk(plan([A]), {"a": [RateLimited("429", retry_after=0.05), None]})
    assert called == ["a", "a"] and result == "a" and time.monotonic() - t0 >= 0.05
    called, result = await walk(plan([A]), {"a": [RateLimited("429", retry_after=600)]})
    assert called == ["a"] and isinstance(result, RateLimited)


async def test_rate_limit_fallbacks_jump_the_queue() -> None:
    called, _ = await walk(plan([A, B], rate_limit_fallbacks=(SAFE,)), {"a": [RateLimited("429")]})
    assert called == ["a", "safe"]


async def test_context_window_exceeded_skips_models_that_are_not_larger() -> None:
    called, result = await walk(plan([A, B, C], context_window_fallbacks=(BIG,)), {"a": [ContextWindowExceeded("x")],
                                                                              "big": [ContextWindowExceeded("x")]})
    assert called == ["a", "big"] and isinstance(result, ContextWindowExceeded)  # c (32k) < big (200k)
    called, result = await walk(plan([A, B, C]), {"a": [ContextWindowExceeded("x")]})
    assert called == ["a", "c"] and result == "c"  # no fallback configured: the larger group member


async def test_content_policy_goes_only_to_the_configured_fallback() -> None:
    called, result = await walk(plan([A, B], content_policy_fallbacks=(SAFE,)), {"a": [ContentPolicy("no")]})
    assert called == ["a", "safe"] and result == "safe"
    called, result = await walk(plan([A, B]), {"a": [ContentPolicy("no")]})
    assert called == ["a"] and isinstance(result, ContentPolicy)


async def test_request_fallbacks_replace_the_routes_own() -> None:
    called, _ = await walk(plan([A, B, C], fallbacks=(SAFE,), drop=frozenset({"c"})),
                           {"a": [Unavailable("x")], "b": [Unavailable("x")]})
    assert called[:3] == ["a", "b", "safe"]


async def test_no_retry_starts_if_it_cannot_start_before_the_deadline() -> None:
    t0 = time.monotonic()
    called, result = await walk(plan([A], timeout_s=0.2), {"a": [RateLimited("429", retry_after=5)]})
    assert called == ["a"] and isinstance(result, RateLimited) and time.monotonic() - t0 < 0.1


async def test_open_breakers_are_skipped_and_all_open_is_a_503() -> None:
    health = HealthTracker([d.name for d in ALL],
                           CircuitBreaker(BreakerSettings(consecutive_failures=1, cooldown_s=60), names=["a", "b"]))
    health.failed("a", Unavailable("503", deployment="a"))
    called, result = await walk(plan([A, B], health=health), {})
    assert called == ["b"] and result == "b"
    health.failed("b", Unavailable("503", deployment="b"))
    p = plan([A, B], health=health)
    called, result = await walk(p, {})
    assert called == [] and isinstance(result, Unavailable) and "circuit breakers are open" in result.message
    assert p.skipped == ["a", "b"] and p.attempts == 0
