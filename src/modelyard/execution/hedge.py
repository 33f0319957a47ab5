"""Hedge mode: if the first deployment has not answered (streams: sent its first chunk) after its
observed latency quantile, send the same request to the next candidate as well, keep whichever
answers first and cancel the other — the loser's connection is closed, so its upstream stops.

At most two calls are in flight, one hedge per request, and a budget caps the extra load (each
hedge-mode request earns `budget_pct`/100 of a hedge). Failures follow the same attempt plan as
single mode: typed fallbacks, retries, breakers, the deadline and `max_attempts` (a hedge is an
attempt).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..deployment import Deployment
from ..errors import ModelyardError
from ..resilience.attempt_plan import AttemptPlan, Gate
from ..resilience.health import HealthTracker
from ..resilience.policy import Policy
from ..resilience.settings import HedgeSettings
from ..resilience.timeouts import GuardedStream
from ..types import ChatRequest, ChatResponse, RouteDecision, StreamChunk
from . import attempt

T = TypeVar("T")


def hedge_delay(settings: HedgeSettings, health: HealthTracker, name: str, *, ttft: bool) -> float:
    """Seconds to wait for `name` before hedging: its observed quantile, clamped; a fixed delay
    when configured; `initial_delay_s` until enough samples exist."""
    if settings.delay_s is not None:
        return settings.delay_s
    q = health.quantile(name, settings.quantile, ttft=ttft, min_samples=settings.min_samples)
    if q is None:
        return settings.initial_delay_s
    return min(settings.max_delay_s, max(settings.min_delay_s, q / 1000.0))


async def complete(chain: list[Deployment], req: ChatRequest, decision: RouteDecision, health: HealthTracker,
                   policy: Policy, gate: Gate | None = None) -> tuple[ChatResponse, Deployment]:
    plan = AttemptPlan(chain, decision, health, policy, gate)
    return await _race(plan, policy, lambda d, t: attempt.call(d, t, req, plan, health), None, ttft=False)


async def open_stream(chain: list[Deployment], req: ChatRequest, decision: RouteDecision, health: HealthTracker,
                      policy: Policy, gate: Gate | None = None) -> tuple[Deployment, GuardedStream, StreamChunk]:
    plan = AttemptPlan(chain, decision, health, policy, gate)
    (rest, first), dep = await _race(plan, policy, lambda d, t: attempt.open_stream(d, t, req, plan, health),
                                     attempt.discard_stream, ttft=True)
    return dep, rest, first


async def _race(plan: AttemptPlan, policy: Policy, start: Callable[[Deployment, int], Awaitable[T]],
                discard: Callable[[Any], Awaitable[None]] | None, *, ttft: bool) -> tuple[T, Deployment]:
    settings = policy.hedge
    assert settings is not None
    budget = policy.budget
    if budget is not None:
        budget.earn()
    loop = plan.loop
    pending: dict[asyncio.Future[T], Deployment] = {}
    unstarted: dict[asyncio.Future[T], tuple[str, int]] = {}  # a task cancelled before it ran owes a release

    def launch(dep: Deployment, token: int) -> None:
        async def attempt_() -> T:
            del unstarted[fut]
            return await start(dep, token)

        fut = asyncio.ensure_future(attempt_())
        pending[fut] = dep
        unstarted[fut] = (dep.name, token)

    dep, token = await plan.next()
    launch(dep, token)
    primary, primary_at, hedged = dep, loop.time(), False
    try:
        while True:
            timeout = None
            if not hedged and len(pending) == 1:
                wait = hedge_delay(settings, plan.health, primary.name, ttft=ttft)
                timeout = max(0.0, primary_at + wait - loop.time())
            done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:  # the primary is slow: hedge, once, if the budget and the plan allow
                hedged = True
                if budget is None or budget.spend():
                    nxt = plan.next_now()
                    if nxt is not None:
                        launch(*nxt)
                    elif budget is not None:
                        budget.tokens += 1.0  # nothing to hedge to: give the hedge back
                continue
            winner: tuple[T, Deployment] | None = None
            failures: list[tuple[Deployment, BaseException]] = []
            for fut in done:
                d = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    failures.append((d, exc))
                elif winner is None:
                    winner = (fut.result(), d)
                elif discard is not None:
                    await discard(fut.result())
            for d, exc in failures:
                if not isinstance(exc, ModelyardError):
                    raise exc
                try:
                    plan.failed(d, exc)  # raises when nothing else may help...
                except ModelyardError:
                    if winner is None:  # ...unless the other call already answered
                        raise
            if winner is not None:
                plan.served(winner[1])
                return winner
            if not pending:  # every call in flight failed: on along the plan
                dep, token = await plan.next()
                launch(dep, token)
                primary, primary_at = dep, loop.time()
    finally:
        if pending:
            for fut in pending:
                fut.cancel()
            for r in await asyncio.gather(*pending, return_exceptions=True):
                if discard is not None and not isinstance(r, BaseException):
                    await discard(r)
        for name, token in unstarted.values():
            plan.health.breaker.release(name, token)
