"""Single mode: call the first deployment of the chain, fall back along it on errors that another
deployment may not have (rate limits, 5xx, timeouts, connection failures, context or policy).

Streams may fall back only until their first chunk exists; after that the stream belongs to the
deployment that produced it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from ..errors import ConnectionFailed, ModelyardError
from ..providers import Deployment
from ..resilience.health import HealthTracker
from ..types import ChatRequest, ChatResponse, RouteDecision, StreamChunk


async def complete(chain: list[Deployment], req: ChatRequest, decision: RouteDecision,
                   health: HealthTracker) -> tuple[ChatResponse, Deployment]:
    last: ModelyardError | None = None
    for dep in chain:
        t0 = time.perf_counter()
        health.started(dep.name)
        try:
            resp = await dep.prepared["provider"].complete(req, dep)
        except ModelyardError as e:
            health.finished(dep.name)
            health.failed(dep.name)
            last = e
            if e.fallback:
                decision.fallbacks.append(dep.name)
                continue
            break
        health.finished(dep.name)
        health.ok(dep.name, (time.perf_counter() - t0) * 1000)
        decision.deployment = dep.name
        return resp, dep
    assert last is not None
    raise last


async def open_stream(chain: list[Deployment], req: ChatRequest, decision: RouteDecision,
                      health: HealthTracker) -> tuple[Deployment, AsyncIterator[StreamChunk], StreamChunk]:
    """Return (deployment, the rest of its stream, its first chunk)."""
    last: ModelyardError | None = None
    for dep in chain:
        agen = dep.prepared["provider"].stream(req, dep)
        try:
            first = await agen.__anext__()
        except StopAsyncIteration:
            e: ModelyardError = ConnectionFailed(f"deployment '{dep.name}' returned an empty stream",
                                                 deployment=dep.name)
        except ModelyardError as err:
            await agen.aclose()  # type: ignore[attr-defined]
            e = err
        else:
            decision.deployment = dep.name
            return dep, agen, first
        health.failed(dep.name)
        last = e
        if not e.fallback:
            break
        decision.fallbacks.append(dep.name)
    assert last is not None
    raise last
