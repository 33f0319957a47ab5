"""The router: turns a resolved route and a request into an ordered deployment chain plus the
RouteDecision that explains it. Built once at config load; `plan` runs per request and does no I/O.

Current strategies: `first-healthy` (group order, cooling-down deployments last) and `weighted`
(a weighted shuffle). The routing engine replaces the internals of `plan` with
features → filters → strategies.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from ..providers import Deployment
from ..resilience.health import HealthTracker
from ..types import ChatRequest, RouteDecision, Scored


@dataclass(slots=True)
class Route:
    """What a public model name resolves to: a group's deployments or one deployment."""

    name: str
    deployments: list[Deployment]
    strategy: str = "first-healthy"
    fallbacks: list[Deployment] = field(default_factory=list)
    is_group: bool = False
    description: str | None = None


class Router:
    def __init__(self, health: HealthTracker, *, seed: int | None = None) -> None:
        self.health = health
        self.rng = random.Random(seed)

    def plan(self, route: Route, req: ChatRequest) -> tuple[list[Deployment], RouteDecision]:
        """Order the route's deployments: the one to call first, then the fallbacks."""
        now = time.monotonic()
        deps = route.deployments
        if route.strategy == "weighted" and len(deps) > 1:
            ordered = weighted_order(deps, self.rng)
            reason = "weighted random order"
        else:
            ordered = deps
            reason = "first healthy deployment in group order" if route.is_group else "explicit deployment"
        healthy = [d for d in ordered if self.health.healthy(d.name, now)]
        cooling = [d for d in ordered if d not in healthy]
        chain = healthy + cooling + [d for d in route.fallbacks if d not in deps]
        decision = RouteDecision(
            model=route.name, deployment=chain[0].name, strategy=route.strategy, reason=reason,
            candidates=[Scored(d.name, 1.0 if d in healthy else 0.0, d in healthy,
                               "healthy" if d in healthy else "cooling down after failures") for d in ordered],
        )
        return chain, decision


def weighted_order(deps: list[Deployment], rng: random.Random) -> list[Deployment]:
    """A weighted shuffle: each position drawn with probability ∝ weight among those left."""
    pool = list(deps)
    out: list[Deployment] = []
    while pool:
        total = sum(d.weight for d in pool)
        if total <= 0:
            out.extend(pool)
            break
        x = rng.random() * total
        for i, d in enumerate(pool):
            x -= d.weight
            if x < 0:
                out.append(pool.pop(i))
                break
        else:
            out.append(pool.pop())
    return out
