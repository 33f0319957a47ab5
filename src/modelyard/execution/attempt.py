"""One upstream call, the unit that single and hedge mode repeat: bounded by the request deadline
and the deployment's timeouts, accounted in health (in-flight, outcome, latency) and released to
the breaker however it ends — success, error, or cancellation (a hedge that lost, a client gone).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from ..deployment import Deployment
from ..errors import ConnectionFailed, ModelyardError
from ..resilience.attempt_plan import AttemptPlan
from ..resilience.health import HealthTracker
from ..resilience.policy import DeploymentTimeouts
from ..resilience.timeouts import GuardedStream, close_stream, deadline_error
from ..telemetry import tracing
from ..types import ChatRequest, ChatResponse, StreamChunk


def call(dep: Deployment, token: int, req: ChatRequest, plan: AttemptPlan,
         health: HealthTracker) -> Coroutine[Any, Any, ChatResponse]:
    """One non-streamed call (to await). Untraced, it is `_call` itself: no coroutine in between."""
    if tracing.TRACER is not None:
        return _traced_call(dep, token, req, plan, health)
    return _call(dep, token, req, plan, health)


async def _traced_call(dep: Deployment, token: int, req: ChatRequest, plan: AttemptPlan,
                       health: HealthTracker) -> ChatResponse:
    with tracing.attempt(dep, stream=False):
        return await _call(dep, token, req, plan, health)


async def _call(dep: Deployment, token: int, req: ChatRequest, plan: AttemptPlan,
                health: HealthTracker) -> ChatResponse:
    name = dep.name
    loop = plan.loop
    t0 = loop.time()
    until, enforced = _limit(plan, plan.policy.timeouts.get(name), t0)
    health.started(name)
    try:
        if enforced:  # the adapter's own timeout comes first: no timer of ours needed
            resp = await dep.adapter.complete(req, dep)
        else:
            try:
                async with asyncio.timeout_at(until):
                    resp = await dep.adapter.complete(req, dep)
            except TimeoutError:
                raise _timeout(dep, plan, until, t0, "an answer") from None
    except ModelyardError as e:
        health.failed(name, e)
        raise
    finally:
        health.finished(name)
        health.breaker.release(name, token)
        plan.decision.upstream_s += loop.time() - t0  # telemetry: the gateway's own time is the rest
    health.ok(name, (loop.time() - t0) * 1000)
    return resp


def open_stream(dep: Deployment, token: int, req: ChatRequest, plan: AttemptPlan,
                health: HealthTracker) -> Coroutine[Any, Any, tuple[GuardedStream, StreamChunk]]:
    """Start a stream and wait for its first chunk (within the time-to-first-token limit); the rest
    comes from the returned GuardedStream, which enforces the idle and total limits. Untraced, it is
    `_open_stream` itself."""
    if tracing.TRACER is not None:
        return _traced_open_stream(dep, token, req, plan, health)
    return _open_stream(dep, token, req, plan, health)


async def _traced_open_stream(dep: Deployment, token: int, req: ChatRequest, plan: AttemptPlan,
                              health: HealthTracker) -> tuple[GuardedStream, StreamChunk]:
    with tracing.attempt(dep, stream=True):
        return await _open_stream(dep, token, req, plan, health)


async def _open_stream(dep: Deployment, token: int, req: ChatRequest, plan: AttemptPlan,
                       health: HealthTracker) -> tuple[GuardedStream, StreamChunk]:
    name = dep.name
    loop = plan.loop
    t0 = loop.time()
    limits = plan.policy.timeouts.get(name)
    until, enforced = _limit(plan, limits, t0)
    first_until = until
    if limits is not None and limits.ttft_s is not None and t0 + limits.ttft_s < until:
        first_until, enforced = t0 + limits.ttft_s, False
    health.started(name)
    agen = dep.adapter.stream(req, dep)
    try:
        try:
            if enforced:
                first = await agen.__anext__()
            else:
                async with asyncio.timeout_at(first_until):
                    first = await agen.__anext__()
        except TimeoutError:
            raise _timeout(dep, plan, first_until, t0, "a first token") from None
        except StopAsyncIteration:
            raise ConnectionFailed(f"deployment '{name}' returned an empty stream", deployment=name) from None
    except ModelyardError as e:
        plan.decision.upstream_s += loop.time() - t0
        with contextlib.suppress(Exception):
            await close_stream(agen)
        health.finished(name)
        health.breaker.release(name, token)
        health.failed(name, e)
        raise
    except BaseException:  # cancelled: the generator was closed by the cancellation itself
        health.finished(name)
        health.breaker.release(name, token)
        raise
    plan.decision.upstream_s += loop.time() - t0  # until the first chunk: what the gateway's TTFT waited for
    idle = limits.idle_s if limits is not None else None
    return GuardedStream(agen, dep, health, token, idle_s=idle, until=until,
                         ttft_ms=(loop.time() - t0) * 1000), first


def _limit(plan: AttemptPlan, limits: DeploymentTimeouts | None, t0: float) -> tuple[float, bool]:
    """(when this call must end, whether the adapter enforces that itself)."""
    if limits is None:
        return plan.deadline, False
    own = t0 + limits.total_s
    if own <= plan.deadline:
        return own, limits.provider_enforced
    return plan.deadline, False


async def discard_stream(opened: tuple[GuardedStream, StreamChunk]) -> None:
    """Close a stream that was opened but is not wanted (a hedge that lost by a hair)."""
    with contextlib.suppress(Exception):
        await opened[0].aclose()


def _timeout(dep: Deployment, plan: AttemptPlan, until: float, t0: float, what: str) -> ModelyardError:
    if until >= plan.deadline:
        return deadline_error(dep, what, plan.policy.timeout_s, request_deadline=True)
    return deadline_error(dep, what, until - t0, request_deadline=False)
