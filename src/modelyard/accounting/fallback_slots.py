"""Deployment rpm/tpm for the deployments a request reaches outside its admitted chain.

Admission takes a slot on every rate-limited deployment of the chain routing planned
(`Admission.route`). Execution can still add deployments: typed fallbacks queued by a failure
(`context_window_fallbacks`, `content_policy_fallbacks`, `rate_limit_fallbacks`), a request's own
`fallbacks`, a same-deployment retry of one of those. `FallbackSlots` is the attempt plan's gate for
them: right before such a call, a limited deployment takes a slot in the same sliding window; a full
one is skipped — its verdict goes into the decision's candidates (`modelyard route --explain`, the
request log) and, if nothing else answers, the client gets the 429 naming it.

A slot taken here is taken for a call that is then made, so it is never given back. It joins the
admission's deployment slots: the one that answers is recounted to the billed tokens when the request
settles, as the admitted chain's are; one whose call failed keeps the estimate (prompt + max_tokens).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import RateLimited
from ..tokens import token_bound
from ..types import ChatRequest, RouteDecision, Scored
from .limits import refused

if TYPE_CHECKING:
    from ..deployment import Deployment
    from .admission import Accounting, Admission


class FallbackSlots:
    """The gate `AttemptPlan` asks before calling a deployment: None (go ahead) or the 429 that
    says why it is skipped."""

    __slots__ = ("acct", "admission", "decision", "req", "tokens")

    def __init__(self, acct: Accounting, admission: Admission, req: ChatRequest, decision: RouteDecision) -> None:
        self.acct = acct
        self.admission = admission
        self.req = req
        self.decision = decision
        self.tokens = -1  # counted on first need

    def __call__(self, dep: Deployment) -> RateLimited | None:
        if not (dep.rpm or dep.tpm) or dep.name in getattr(self.admission, "dep_slots", ()):
            return None  # unlimited, or admission already holds its slot
        if self.tokens < 0:
            held = getattr(self.admission, "tokens", None)
            self.tokens = held if held is not None else token_bound(self.req.messages) + (self.req.max_tokens or 0)
        store = self.acct.limits.store
        key = f"rate:deployment:{dep.name}"
        now = time.time()
        ticket, wait = store.rate_take(key, now, dep.rpm, dep.tpm, self.tokens)
        if ticket is not None:
            slots = getattr(self.admission, "dep_slots", None)
            if slots is not None:  # settled with the rest (Admission.settle)
                slots[dep.name] = (key, ticket)
            return None
        used = store.rate_used(key, now)
        err = refused(f"deployment:{dep.name}", dep.rpm, dep.tpm, used, self.tokens, wait)
        why = (f"rpm limit reached ({used[0]}/{dep.rpm} in the last minute)" if dep.rpm and used[0] >= dep.rpm
               else f"tpm limit reached ({used[1]}/{dep.tpm} in the last minute)")
        self._note(dep.name, f"fallback skipped: {why}")
        return err

    def _note(self, name: str, reason: str) -> None:
        """The skipped deployment's verdict, among the decision's candidates (read on this rare path)."""
        candidates = self.decision.candidates
        for i, c in enumerate(candidates):
            if c.deployment == name:  # (replaced, not changed: routing may share its Scored objects)
                candidates[i] = Scored(deployment=name, score=c.score, eligible=False, reason=reason)
                return
        candidates.append(Scored(deployment=name, score=0.0, eligible=False, reason=reason))


def fallback_gate(acct: Accounting, limited: bool, admission: Admission, req: ChatRequest,
                  decision: RouteDecision) -> FallbackSlots | None:
    """The gate for one request, or None when no deployment of the config has rpm/tpm (`limited`)."""
    return FallbackSlots(acct, admission, req, decision) if limited else None
