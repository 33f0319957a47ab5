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
from collections.abc import Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import NoCandidate
from ..resilience.health import HealthTracker
from .features import Features
from .hooks import RoutingHooks

if TYPE_CHECKING:
    from ..deployment import Deployment


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


@dataclass(frozen=True, slots=True)
class Offer:
    """The deployments of a group that offer a capability set, and why each other one cannot serve
    a request that needs it: worked out once per set (requests ask for a few: vision, tools, json)."""

    deployments: list[Deployment]  # in group order
    rejected: dict[str, str]  # the others: deployment -> "lacks ..."
    min_context: int  # the smallest context window and max output among `deployments`
    min_max_output: int


_OFFERS_KEPT = 64  # capability sets whose Offer a filter keeps (request_capabilities makes at most 8)
CIRCUIT_OPEN = "cooling down after failures (circuit open)"
_NONE_DOWN: frozenset[str] = frozenset()


class CandidateFilter:
    """The filters of one model group, with what can be worked out from its deployments at load."""

    def __init__(self, deployments: list[Deployment], constraints: Constraints | None = None,
                 health: HealthTracker | None = None, hooks: RoutingHooks | None = None) -> None:
        self.deployments = deployments
        self.names = frozenset(d.name for d in deployments)
        self.constraints = cons = constraints or Constraints()
        self.health = health
        self.hooks = hooks if hooks is not None else RoutingHooks()
        self.constrained = cons.min_quality is not None or cons.max_cost_usd is not None \
            or cons.max_latency_ms is not None or bool(cons.tags)
        self.limited = [d for d in deployments if d.max_concurrency]
        self._offers: dict[frozenset[str], Offer] = {}
        # (candidates, open circuits) -> (kept, set aside): see `split`
        self._splits: dict[tuple[tuple[Deployment, ...], frozenset[str]], tuple[list[Deployment], ...]] = {}
        self.offer(frozenset())  # (every deployment: what most requests ask)

    def offer(self, caps: frozenset[str]) -> Offer:
        """The group's deployments that offer `caps` (worked out on the first request that asks)."""
        got = self._offers.get(caps)
        if got is not None:
            return got
        ok, rejected = [], {}
        for d in self.deployments:
            why = lacks(caps, d.card.capabilities)
            if why is None:
                ok.append(d)
            else:
                rejected[d.name] = why
        got = Offer(ok, rejected, min((d.card.context_window for d in ok), default=0),
                    min((d.card.max_output for d in ok), default=0))
        if len(self._offers) < _OFFERS_KEPT:
            self._offers[caps] = got
        return got

    def fits(self, offer: Offer, context_tokens: int, max_tokens: int | None, f: Features | None = None) -> bool:
        """True when no hard filter but the capability one can remove a deployment of `offer` from a
        request that needs `context_tokens` of context (with request hints `f`, when analysed): the
        one test every shortcut uses."""
        return (context_tokens <= offer.min_context and (max_tokens or 0) <= offer.min_max_output
                and not self.constrained and self.hooks.budget is None
                and (f is None or (f.min_quality is None and f.max_cost_usd is None
                                   and f.latency_budget_ms is None and not f.tags)))

    def unconstrained(self, caps: frozenset[str], context_tokens: int, max_tokens: int | None,
                      f: Features | None = None) -> bool:
        """True when no hard filter can remove a deployment of the group from such a request."""
        offer = self.offer(caps)
        return not offer.rejected and self.fits(offer, context_tokens, max_tokens, f)

    def hard(self, deps: list[Deployment], f: Features, max_tokens: int | None,
             rejected: dict[str, str]) -> list[Deployment]:
        """The deployments that pass the hard filters; the others go into `rejected` with a reason."""
        cons = self.constraints
        min_q = f.min_quality if f.min_quality is not None else cons.min_quality
        max_cost = _tighter(f.max_cost_usd, cons.max_cost_usd)
        max_lat = _tighter(f.latency_budget_ms, cons.max_latency_ms)
        tags = f.tags | cons.tags if cons.tags else f.tags
        remaining = None
        if self.hooks.budget is not None:
            sb = self.hooks.budget(f)
            if sb is not None:
                remaining = sb[1] - sb[0]
        ok = []
        for d in deps:
            why = self._hard(d, f, max_tokens, min_q, max_cost, max_lat, tags, remaining)
            if why is None:
                ok.append(d)
            else:
                rejected[d.name] = why
        return ok

    def run(self, f: Features, max_tokens: int | None = None, now: float | None = None) -> Filtered:
        """Hard then soft filters over the group. When only the capability filter can remove a
        deployment, its outcome for the request's capability set is the one worked out before."""
        offer = self.offer(f.capabilities)
        if self.fits(offer, f.context_tokens, max_tokens, f):
            ok, rejected = offer.deployments, dict(offer.rejected)
        else:
            rejected = {}
            ok = self.hard(self.deployments, f, max_tokens, rejected)
        return self.soft(ok, f, rejected, now)

    def circuits_down(self, now: float | None = None) -> frozenset[str] | set[str]:
        """The group's deployments whose circuit keeps them out now (open and cooling down, or
        half-open with no probe slot free). Only those the breaker lists as not closed are asked:
        with every circuit of the group closed this is one set test."""
        health = self.health
        if health is None:
            return _NONE_DOWN
        breaker = health.breaker
        if not breaker.enabled or not breaker.not_closed or breaker.not_closed.isdisjoint(self.names):
            return _NONE_DOWN
        t = time.monotonic() if now is None else now
        return {n for n in breaker.not_closed & self.names if not health.healthy(n, t)}

    def soft(self, ok: list[Deployment], f: Features | None, rejected: dict[str, str],
             now: float | None = None) -> Filtered:
        """The soft filters over what passed the hard ones (deployments of this group): circuit /
        cool-down, concurrency, rate-limit headroom (`f` may be None only when no headroom hook is set)."""
        health = self.health
        headroom = self.hooks.headroom
        if health is None:
            return Filtered(ok, [], rejected)
        down = self.circuits_down(now)
        if not self.limited and headroom is None:  # only circuits can set a deployment aside
            if not down:
                return Filtered(ok, [], rejected)
            kept, deferred = self.split(ok, down)
            for d in deferred:
                rejected[d.name] = CIRCUIT_OPEN
            return Filtered(kept, deferred, rejected)
        eligible: list[Deployment] = []
        # set aside in this order: open circuits, then full concurrency, then no headroom
        deferred_by: tuple[list[Deployment], list[Deployment], list[Deployment]] = ([], [], [])
        for d in ok:
            if d.name in down:
                kind, why = 0, CIRCUIT_OPEN
            elif d.max_concurrency and health.by_name[d.name].inflight >= d.max_concurrency:
                kind, why = 1, f"at max concurrency ({d.max_concurrency} in flight)"
            elif headroom is not None and f is not None and (room := headroom(d, f)) is not None:
                kind, why = 2, room
            else:
                eligible.append(d)
                continue
            deferred_by[kind].append(d)
            rejected[d.name] = why
        return Filtered(eligible, deferred_by[0] + deferred_by[1] + deferred_by[2], rejected)

    def split(self, ok: list[Deployment], down: Set[str]) -> tuple[list[Deployment], ...]:
        """`ok` without and with the deployments named in `down` (each in `ok`'s order), worked out
        once per list and set of open circuits: while a breaker stays open, every request asks the
        same. (Callers only read the lists.)"""
        key = (tuple(ok), frozenset(down))  # (deployments hash by identity; the key keeps them alive)
        got = self._splits.get(key)
        if got is None:
            got = ([d for d in ok if d.name not in down], [d for d in ok if d.name in down])
            if len(self._splits) < _OFFERS_KEPT:
                self._splits[key] = got
        return got

    def _hard(self, d: Deployment, f: Features, max_tokens: int | None, min_q: float | None,
              max_cost: float | None, max_lat: float | None, tags: frozenset[str],
              remaining: float | None) -> str | None:
        c = d.card
        why = lacks(f.capabilities, c.capabilities)
        if why is not None:
            return why
        if f.context_tokens > c.context_window:
            return f"{TOO_LONG}{f.context_tokens} tokens > window {c.context_window}"
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


def lacks(needed: frozenset[str], offered: frozenset[str]) -> str | None:
    """Why a deployment offering `offered` cannot serve a request that needs `needed` (None: it can)."""
    missing = needed - offered
    return f"lacks {', '.join(sorted(missing))}" if missing else None


def _tighter(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


TOO_LONG = "context "  # how a context-window rejection starts (the router's context fallbacks look for it)


def no_candidate(model: str, rejected: dict[str, str]) -> NoCandidate:
    """The 422 that says which constraint removed which deployment."""
    detail = "; ".join(f"{name}: {why}" for name, why in rejected.items())
    return NoCandidate(f"no deployment of '{model}' can serve this request: {detail}", param="model",
                       code="no_candidate")
