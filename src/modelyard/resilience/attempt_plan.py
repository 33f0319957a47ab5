"""One request's way through its deployments: which to call next, when to wait, when to give up.

The chain comes from routing (ranked candidates, then the route's general fallbacks). The plan
walks it, skipping deployments whose circuit breaker refuses a call, and reshapes what is left by
the type of each failure:

- rate limit, 5xx, timeout, connection: the rest of the chain (for a rate limit,
  `rate_limit_fallbacks` first); the failed deployment is queued for a same-deployment retry
  after a full-jitter backoff or its Retry-After;
- context window exceeded: `context_window_fallbacks`, then the rest of the chain with a larger
  context window;
- content policy: `content_policy_fallbacks` only;
- anything else (auth, bad request, not found, ...): nothing; the error is raised at once.

A `gate` (accounting/fallback_slots.py) may refuse a deployment right before its call (a typed
fallback whose rpm/tpm window is full): it is skipped, and its refusal is the error to report if
nothing else answers.

Same-deployment retries run only when no other deployment is left, each waits its delay, and none
starts if it could not start before the deadline. Every call counts against `max_attempts`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ContentPolicy, ContextWindowExceeded, ModelyardError, RateLimited, Timeout, Unavailable
from .breaker import REFUSED
from .retry import retry_delay

if TYPE_CHECKING:
    from ..deployment import Deployment
    from ..types import RouteDecision
    from .health import HealthTracker
    from .policy import Policy

_SEQ = itertools.count()

# Asked before a call: None, or the error that makes the plan skip the deployment.
Gate = Callable[["Deployment"], "ModelyardError | None"]


class AttemptPlan:
    __slots__ = ("_pool", "_retries", "_tried", "attempts", "deadline", "decision", "gate", "health", "last",
                 "loop", "max_attempts", "policy", "queue", "skipped")

    def __init__(self, chain: list[Deployment], decision: RouteDecision, health: HealthTracker,
                 policy: Policy, gate: Gate | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.gate = gate
        self.policy = policy
        self.decision = decision
        self.health = health
        if policy.fallbacks is not None:  # the request named its own fallbacks
            chain = [d for d in chain if d.name not in policy.drop]
            chain += [d for d in policy.fallbacks if d not in chain]
        self.queue: deque[Deployment] = deque(chain)
        self.deadline = self.loop.time() + policy.timeout_s
        self.max_attempts = policy.retry.max_attempts
        self.attempts = 0
        self.last: ModelyardError | None = None
        self.skipped: list[str] = []  # refused by their breaker
        self._pool: list[tuple[float, int, Deployment]] = []  # same-deployment retries: (ready at, seq, dep)
        self._retries: dict[str, int] = {}
        self._tried: set[str] = set()

    # --- choosing ------------------------------------------------------------------------------
    def _count(self, dep: Deployment) -> None:
        self.attempts += 1
        self.decision.attempts = self.attempts
        self._tried.add(dep.name)

    def next_now(self) -> tuple[Deployment, int] | None:
        """The next untried deployment whose breaker lets a call through, without waiting; or None.
        Returns the breaker token to release when the call ends."""
        if self.attempts >= self.max_attempts or self.loop.time() >= self.deadline:
            return None
        breaker = self.health.breaker
        while self.queue:
            dep = self.queue.popleft()
            if dep.name in self._tried:
                continue
            token = breaker.acquire(dep.name, time.monotonic())
            if token != REFUSED:
                if self.gate is not None and not self._gated(dep, token):
                    continue
                self._count(dep)
                return dep, token
            self.skipped.append(dep.name)
        return None

    def _gated(self, dep: Deployment, token: int) -> bool:
        """Ask the gate; a refused deployment gives its breaker token back and is skipped."""
        refusal = self.gate(dep) if self.gate is not None else None
        if refusal is None:
            return True
        self.health.breaker.release(dep.name, token)
        self.last = refusal
        return False

    async def next(self) -> tuple[Deployment, int]:
        """The next deployment to call, waiting out a retry delay if only same-deployment retries
        are left; raises the error for the caller when nothing more may be tried in time."""
        got = self.next_now()
        if got is not None:
            return got
        breaker = self.health.breaker
        while self._pool and self.attempts < self.max_attempts:
            ready, _, dep = heapq.heappop(self._pool)
            if ready >= self.deadline:
                break  # the pool is ordered: no later retry fits either
            delay = ready - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            token = breaker.acquire(dep.name, time.monotonic())
            if token != REFUSED:
                if self.gate is not None and not self._gated(dep, token):
                    continue
                self._count(dep)
                return dep, token
            self.skipped.append(dep.name)
        raise self._tag(self.error())

    def error(self) -> ModelyardError:
        """What to tell the caller when the plan gives up."""
        if self.last is not None:
            return self.last
        if self.loop.time() >= self.deadline:
            return Timeout(f"no deployment answered within the request deadline of {self.policy.timeout_s:g} s")
        return Unavailable(f"no deployment for '{self.decision.model}' can take requests right now: their circuit "
                           f"breakers are open after recent failures ({', '.join(self.skipped) or 'none'}); "
                           "try again shortly")

    # --- learning from a failure ---------------------------------------------------------------
    def failed(self, dep: Deployment, e: ModelyardError) -> None:
        """Record a failed call and reshape what is left by the error's type. Raises `e` when no
        other call may help (the request's own fault, or the deployment's non-transient one)."""
        self.last = e
        self.decision.fallbacks.append(dep.name)
        self.decision.failures.append(e.type)
        p = self.policy
        if isinstance(e, ContextWindowExceeded):
            window = dep.card.context_window
            first = [d for d in p.context_window_fallbacks if d.name not in self._tried]
            self.queue = deque(first + [d for d in self.queue if d.card.context_window > window and d not in first])
            return
        if isinstance(e, ContentPolicy):
            self.queue = deque(d for d in p.content_policy_fallbacks if d.name not in self._tried)
            return
        if not (e.fallback or e.retryable):
            raise self._tag(e)
        if isinstance(e, RateLimited) and p.rate_limit_fallbacks:
            first = [d for d in p.rate_limit_fallbacks if d.name not in self._tried]
            self.queue = deque(first + [d for d in self.queue if d not in first])
        n = self._retries.get(dep.name, 0)
        delay = retry_delay(p.retry, e, n)
        if delay is not None:
            self._retries[dep.name] = n + 1
            heapq.heappush(self._pool, (self.loop.time() + delay, next(_SEQ), dep))

    def served(self, dep: Deployment) -> None:
        self.decision.deployment = dep.name

    def _tag(self, e: ModelyardError) -> ModelyardError:
        """Note the upstream calls made on the error the caller gets (the server sends it as
        x-modelyard-attempts)."""
        e.attempts = self.attempts  # type: ignore[attr-defined]  # read by the server with getattr
        return e
