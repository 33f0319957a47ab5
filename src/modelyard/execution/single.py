"""Single mode: call one deployment at a time along the chain, with the retry policy, typed
fallbacks, breakers and deadline of resilience/attempt_plan.py.

Streams may fall back and retry only until their first chunk exists; after that the stream belongs
to the deployment that produced it (a later failure is the caller's to report). When the policy
asks for hedging, both functions hand over to hedge.py.
"""

from __future__ import annotations

from ..deployment import Deployment
from ..errors import ModelyardError
from ..resilience.attempt_plan import AttemptPlan, Gate
from ..resilience.health import HealthTracker
from ..resilience.policy import Policy, default_policy
from ..resilience.timeouts import GuardedStream
from ..types import ChatRequest, ChatResponse, RouteDecision, StreamChunk
from . import attempt, hedge

_DEFAULT: Policy | None = None


def _default() -> Policy:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = default_policy()
    return _DEFAULT


async def complete(chain: list[Deployment], req: ChatRequest, decision: RouteDecision, health: HealthTracker,
                   policy: Policy | None = None, gate: Gate | None = None) -> tuple[ChatResponse, Deployment]:
    """The first successful answer along the chain, or the error to report. `gate`: asked before
    each call (deployment rpm/tpm of fallbacks outside the admitted chain)."""
    policy = policy or _default()
    if policy.hedge is not None:
        return await hedge.complete(chain, req, decision, health, policy, gate)
    plan = AttemptPlan(chain, decision, health, policy, gate)
    while True:
        dep, token = plan.next_now() or await plan.next()  # (no coroutine when nothing waits)
        try:
            resp = await attempt.call(dep, token, req, plan, health)
        except ModelyardError as e:
            plan.failed(dep, e)
            continue
        plan.served(dep)
        return resp, dep


async def open_stream(chain: list[Deployment], req: ChatRequest, decision: RouteDecision, health: HealthTracker,
                      policy: Policy | None = None, gate: Gate | None = None
                      ) -> tuple[Deployment, GuardedStream, StreamChunk]:
    """Return (deployment, the rest of its stream, its first chunk)."""
    policy = policy or _default()
    if policy.hedge is not None:
        return await hedge.open_stream(chain, req, decision, health, policy, gate)
    plan = AttemptPlan(chain, decision, health, policy, gate)
    while True:
        dep, token = plan.next_now() or await plan.next()  # (no coroutine when nothing waits)
        try:
            rest, first = await attempt.open_stream(dep, token, req, plan, health)
        except ModelyardError as e:
            plan.failed(dep, e)
            continue
        plan.served(dep)
        return dep, rest, first
