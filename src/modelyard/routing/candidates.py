"""Candidate filters: which of a group's deployments may serve this request at all.

Hard filters remove a deployment (it cannot serve the request, or the caller forbade it):
capabilities, context window and max output, max cost per request, max latency, min quality for the
task, required tags, remaining budget. Soft filters only move a deployment to the back of the chain
(it should not be first, but is better than nothing): circuit open / cooling down, at max
concurrency, no rate-limit headroom. When the hard filters leave nothing, `NoCandidate` (422) says
which constraint removed which deployment.

Everything per deployment that does not depend on the request (prices, windows, capability sets,
quality per task) is read from the card, which is built once at config load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter, countOf
from typing import TYPE_CHECKING, Any

from ..errors import NoCandidate
from ..resilience.breaker import CLOSED, BreakerRecord, CircuitBreaker
from ..resilience.health import HealthTracker
from .features import Features

if TYPE_CHECKING:
    from ..deployment import Deployment

# hook: (features) -> (spent_usd, budget_usd) of the request's key/team, or None when it has none
BudgetHook = Callable[[Features], "tuple[float, float] | None"]
# hook: (deployment, features) -> why it has no rate-limit headroom now, or None when it has some
HeadroomHook = Callable[["Deployment", Features], "str | None"]


def est_cost(dep: Deployment, f: Features) -> float:
    """USD this request will probably cost on `dep` (prompt estimate + expected output)."""
    c = dep.card
    return (f.input_tokens * c.input_per_m + f.output_tokens * c.output_per_m) / 1_000_000


def est_latency_ms(dep: Deployment, f: Features, health: HealthTracker | None) -> float:
    """Time to the whole reply: observed time to first token (EWMA) or the card's prior, plus the
    expected output at the card's speed."""
    c = dep.card
    ttft = c.ttft_ms
    if health is not None:
        h = health.by_name.get(dep.name)
        if h is not None and h.ewma_ttft_ms is not None:
            ttft = h.ewma_ttft_ms
    return ttft + f.output_tokens * 1000.0 / c.tokens_per_s


@dataclass(slots=True)
class Constraints:
    """Group-level limits from config (`options:` of a model group); requests may tighten them."""

    min_quality: float | None = None
    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    tags: frozenset[str] = frozenset()


@dataclass(slots=True)
class Filtered:
    eligible: list[Deployment]  # passed every filter, in group order
    deferred: list[Deployment] = field(default_factory=list)  # passed the hard filters, failed a soft one
    rejected: dict[str, str] = field(default_factory=dict)  # deployment -> why (hard and soft)


class CandidateFilter:
    """The filters of one model group, with what can be precomputed from its deployments."""

    def __init__(self, deployments: list[Deployment], constraints: Constraints | None = None,
                 health: HealthTracker | None = None, hooks: dict[str, Any] | None = None) -> None:
        self.deployments = deployments
        self.constraints = constraints or Constraints()
        self.health = health
        # Fast path: a request that needs no more than every deployment offers skips the scans.
        self.common_caps = frozenset.intersection(*(d.card.capabilities for d in deployments)) \
            if deployments else frozenset()
        self.min_context = min((d.card.context_window for d in deployments), default=0)
        self.min_max_output = min((d.card.max_output for d in deployments), default=0)
        self.limited = [d for d in deployments if d.max_concurrency]
        self.hooks: dict[str, Any] = {} if hooks is None else hooks  # "budget", "headroom" (read per request)
        self.headroom: HeadroomHook | None = None  # the built-in rpm/tpm check, when a deployment sets limits
        self._breaker: CircuitBreaker | None = None  # whose records `_records` are (the breaker's live objects)
        self._records: list[BreakerRecord] = []
        self._open: Constraints | None = None  # see `_is_open`
        self._plain_health = health is not None and type(health).healthy is HealthTracker.healthy

    def hard(self, deps: list[Deployment], f: Features, max_tokens: int | None,
             rejected: dict[str, str]) -> list[Deployment]:
        """The deployments that pass the hard filters; the others go into `rejected` with a reason."""
        cons = self.constraints
        min_q = f.min_quality if f.min_quality is not None else cons.min_quality
        max_cost = _tighter(f.max_cost_usd, cons.max_cost_usd)
        max_lat = _tighter(f.latency_budget_ms, cons.max_latency_ms)
        tags = f.tags | cons.tags if cons.tags else f.tags
        remaining = None
        budget = self.hooks.get("budget")
        if budget is not None:
            sb = budget(f)
            if sb is not None:
                remaining = sb[1] - sb[0]
        if (f.capabilities <= self.common_caps and f.context_tokens <= self.min_context
                and (max_tokens or 0) <= self.min_max_output and min_q is None and max_cost is None
                and max_lat is None and not tags and remaining is None and deps is self.deployments):
            return deps  # the common case: nothing to check
        ok = []
        for d in deps:
            why = self._hard(d, f, max_tokens, min_q, max_cost, max_lat, tags, remaining)
            if why is None:
                ok.append(d)
            else:
                rejected[d.name] = why
        return ok

    def run(self, f: Features, max_tokens: int | None = None, now: float | None = None) -> Filtered:
        health = self.health
        if (f.capabilities <= self.common_caps and f.context_tokens <= self.min_context
                and (max_tokens or 0) <= self.min_max_output and f.min_quality is None and f.max_cost_usd is None
                and f.latency_budget_ms is None and not f.tags and not self.hooks and self.headroom is None
                and (self._open is (cons := self.constraints) or self._is_open(cons))
                and (health is None or (self._plain_health and (not (b := health.breaker).enabled or not b.not_closed))
                     or self._all_closed(health))):  # (`_all_closed`'s first answer inline)
            # the common case, in one test: nothing for a hard filter to check (as `hard` finds), every
            # circuit closed, no concurrency limit or headroom check (as `soft` finds)
            return Filtered(self.deployments, [], {})
        rejected: dict[str, str] = {}
        return self.soft(self.hard(self.deployments, f, max_tokens, rejected), f, rejected, now)

    def _is_open(self, cons: Constraints) -> bool:
        """No concurrency limit and no group-level constraint (remembered for this constraints object
        while it has none: `run`'s common case reads one attribute for it)."""
        if self.limited or cons.min_quality is not None or cons.max_cost_usd is not None \
                or cons.max_latency_ms is not None or cons.tags:
            self._open = None
            return False
        self._open = cons
        return True

    def fits_all(self, caps: frozenset[str], context_bound: int, max_tokens: int | None) -> bool:
        """True when the hard filters cannot remove anything from a request that needs `caps` and at
        most `context_bound` tokens of context, and carries no hints (no tags, cost or latency
        limits, min quality) — so they need not run, nor the prompt be counted exactly. Only for
        groups without group-level constraints and without a budget hook."""
        cons = self.constraints
        return (caps <= self.common_caps and context_bound <= self.min_context
                and (max_tokens or 0) <= self.min_max_output and not cons.tags and cons.min_quality is None
                and cons.max_cost_usd is None and cons.max_latency_ms is None and "budget" not in self.hooks)

    def soft(self, ok: list[Deployment], f: Features | None, rejected: dict[str, str],
             now: float | None = None) -> Filtered:
        """The soft filters over what passed the hard ones: circuit / cool-down, concurrency,
        rate-limit headroom (`f` may be None only when no headroom check is configured)."""
        health = self.health
        eligible: list[Deployment] = []
        deferred: list[Deployment] = []
        if health is not None:
            if ok is self.deployments and self._all_closed(health):
                flags = None  # the common case: every circuit closed, nothing to ask per deployment
            else:
                t = time.monotonic() if now is None else now
                healthy = health.healthy
                flags = [healthy(d.name, t) for d in ok]
            if flags is None or all(flags):
                eligible = ok  # the common case: the same list object (strategies recognise it)
            else:
                for d, fine in zip(ok, flags, strict=True):
                    if fine:
                        eligible.append(d)
                    else:
                        deferred.append(d)
                        rejected[d.name] = "cooling down after failures (circuit open)"
        else:
            eligible = ok
        if self.limited and health is not None:
            for d in self.limited:
                if d in eligible and health.by_name[d.name].inflight >= (d.max_concurrency or 0):
                    if eligible is ok:
                        eligible = list(ok)
                    eligible.remove(d)
                    deferred.append(d)
                    rejected[d.name] = f"at max concurrency ({d.max_concurrency} in flight)"
        headroom = self.headroom or self.hooks.get("headroom")
        if headroom is not None:
            assert f is not None
            for d in list(eligible):
                why = headroom(d, f)
                if why is not None:
                    if eligible is ok:
                        eligible = list(ok)
                    eligible.remove(d)
                    deferred.append(d)
                    rejected[d.name] = why
        return Filtered(eligible, deferred, rejected)

    def _all_closed(self, health: HealthTracker) -> bool:
        """True when every deployment's circuit breaker is closed (so all are available), read from
        the breakers' live records in one C-level pass; False means: ask each deployment."""
        if type(health).healthy is not HealthTracker.healthy:
            return False  # a tracker with its own notion of healthy
        breaker = health.breaker
        if not breaker.enabled or not breaker.not_closed:  # (no breaker anywhere is open or probing)
            return True
        if self._breaker is not breaker:
            self._breaker = breaker
            self._records = [breaker.record(d.name) for d in self.deployments]
        return countOf(map(_STATE, self._records), CLOSED) == len(self._records)

    def _hard(self, d: Deployment, f: Features, max_tokens: int | None, min_q: float | None,
              max_cost: float | None, max_lat: float | None, tags: frozenset[str],
              remaining: float | None) -> str | None:
        c = d.card
        missing = f.capabilities - c.capabilities
        if missing:
            return f"lacks {', '.join(sorted(missing))}"
        if f.context_tokens > c.context_window:
            return f"context {f.context_tokens} tokens > window {c.context_window}"
        if max_tokens and max_tokens > c.max_output:
            return f"max_tokens {max_tokens} > max output {c.max_output}"
        if tags and not tags <= frozenset(d.tags):
            return f"missing tags {', '.join(sorted(tags - frozenset(d.tags)))}"
        if min_q is not None:
            q = c.quality_for(f.task)
            if q < min_q:
                return f"quality {q:.2f} for {f.task} < min {min_q:.2f}"
        if max_cost is not None or remaining is not None:
            cost = est_cost(d, f)
            if max_cost is not None and cost > max_cost:
                return f"estimated cost ${cost:.6f} > max ${max_cost:.6f}"
            if remaining is not None and cost > remaining:
                return f"estimated cost ${cost:.6f} > remaining budget ${max(remaining, 0):.6f}"
        if max_lat is not None:
            lat = est_latency_ms(d, f, self.health)
            if lat > max_lat:
                return f"estimated latency {lat:.0f} ms > budget {max_lat:.0f} ms"
        return None


_STATE = attrgetter("state")


def _tighter(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def no_candidate(model: str, rejected: dict[str, str]) -> NoCandidate:
    """The 422 that says which constraint removed which deployment."""
    detail = "; ".join(f"{name}: {why}" for name, why in rejected.items())
    return NoCandidate(f"no deployment of '{model}' can serve this request: {detail}", param="model",
                       code="no_candidate")
