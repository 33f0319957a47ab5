"""Embeddings along a chain: the deployments in order, with the same attempt plan (retries, typed
fallbacks, breakers, request deadline) that chat calls use, and health accounted per call."""

from __future__ import annotations

import asyncio

from ..deployment import Deployment
from ..errors import ModelyardError, Timeout
from ..providers.base import Provider
from ..resilience.attempt_plan import AttemptPlan
from ..resilience.health import HealthTracker
from ..resilience.policy import Policy
from ..types import EmbeddingRequest, EmbeddingResponse, RouteDecision


def embedders(chain: list[Deployment]) -> list[Deployment]:
    """The deployments of `chain` that serve embeddings, in order."""
    return [d for d in chain if isinstance(d.adapter, Provider) and d.adapter.embeds(d)]


async def embed(chain: list[Deployment], req: EmbeddingRequest, decision: RouteDecision, health: HealthTracker,
                policy: Policy) -> tuple[EmbeddingResponse, Deployment]:
    """The first deployment's vectors that arrive, or the error to report."""
    plan = AttemptPlan(chain, decision, health, policy)
    while True:
        dep, token = plan.next_now() or await plan.next()
        adapter = dep.adapter
        assert isinstance(adapter, Provider)
        t0 = plan.loop.time()
        health.started(dep.name)
        try:
            try:
                async with asyncio.timeout_at(min(plan.deadline, t0 + dep.timeout_s)):
                    resp = await adapter.embed(req, dep)
            except TimeoutError:
                raise Timeout(f"deployment '{dep.name}' did not return embeddings in time",
                              deployment=dep.name) from None
        except ModelyardError as e:
            health.failed(dep.name, e)
            plan.failed(dep, e)  # raises when no other deployment may help
            continue
        finally:
            health.finished(dep.name)
            health.breaker.release(dep.name, token)
        health.ok(dep.name, (plan.loop.time() - t0) * 1000)
        plan.served(dep)
        return resp, dep
