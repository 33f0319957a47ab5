"""Rate limits: requests and tokens per minute per key/team (the caller's `RateLimit`s) and per
deployment (`rpm`/`tpm` in its config), as 60-second sliding windows in `state/`.

A caller's limits are checked and taken before routing: over any of them the request is refused
with 429 `rate_limit_exceeded` and a Retry-After that is the exact moment enough of the window has
passed. A deployment's limits are taken after routing, for every limited deployment of the chain
(full ones leave the chain; none left → 429), and given back after the call for deployments the
request never reached — so a deployment is never sent more than its limit, and routing's
`headroom` hook moves full deployments out of the way before that. Tokens are taken as the prompt
estimate plus the expected output and recounted to the billed total when the call ends.
"""

from __future__ import annotations

import math
import time

from ..deployment import Deployment
from ..errors import RateLimited
from ..routing.features import Features
from ..state import AccountingStore
from ..types import RateLimit


def refused(scope: str, rpm: int | None, tpm: int | None, used: tuple[int, int], tokens: int,
            wait: float) -> RateLimited:
    """The 429 for a full window, naming the limit and when to come back."""
    parts = []
    if rpm:
        parts.append(f"{rpm} requests per minute ({used[0]} used)")
    if tpm:
        parts.append(f"{tpm} tokens per minute ({used[1]} used, this request needs ~{tokens})")
    if math.isinf(wait):
        err = RateLimited(f"rate limit of {scope}: this request needs ~{tokens} tokens, more than the whole "
                          f"limit of {tpm} tokens per minute; send a shorter prompt or a lower max_tokens",
                          code="rate_limit_exceeded")
    else:
        err = RateLimited(f"rate limit of {scope} exceeded: {' and '.join(parts)}; retry in {math.ceil(wait)} s",
                          retry_after=wait, code="rate_limit_exceeded")
    err.limit_scope = scope.partition(":")[0]  # key|team|user|deployment: the metric's label (gateway.py)
    return err


class Limits:
    """Check-and-take against the sliding windows of one `AccountingStore`."""

    def __init__(self, store: AccountingStore) -> None:
        self.store = store

    def take_caller(self, limits: tuple[tuple[str, RateLimit], ...], tokens: int, now: float
                    ) -> list[tuple[str, object]]:
        """Take one request from every limit of the caller (each with its window's store key,
        "rate:<scope>"), or take none and raise 429."""
        taken: list[tuple[str, object]] = []
        store = self.store
        for key, lim in limits:
            ticket, wait = store.rate_take(key, now, lim.rpm, lim.tpm, tokens)
            if ticket is None:
                self.refund(taken)
                raise refused(lim.scope, lim.rpm, lim.tpm, store.rate_used(key, now), tokens, wait)
            taken.append((key, ticket))
        return taken

    def take_chain(self, chain: list[Deployment], tokens: int, now: float
                   ) -> tuple[list[Deployment], list[tuple[str, object]], str]:
        """(the chain without full deployments, the slots taken, why the first full one was full)."""
        kept: list[Deployment] = []
        taken: list[tuple[str, object]] = []
        first_full = ""
        best_wait = math.inf
        for d in chain:
            if not (d.rpm or d.tpm):
                kept.append(d)
                continue
            key = f"rate:deployment:{d.name}"
            ticket, wait = self.store.rate_take(key, now, d.rpm, d.tpm, tokens)
            if ticket is None:
                if wait < best_wait:
                    best_wait = wait
                    first_full = d.name
                continue
            kept.append(d)
            taken.append((key, ticket))
        if not kept:
            d = next(d for d in chain if d.name == first_full) if first_full else chain[0]
            key = f"rate:deployment:{d.name}"
            raise refused(f"deployment:{d.name}", d.rpm, d.tpm, self.store.rate_used(key, now), tokens, best_wait)
        return kept, taken, first_full

    def headroom(self, dep: Deployment, f: Features) -> str | None:
        """Routing's soft filter: why `dep` cannot take this request now (None: it can)."""
        if not (dep.rpm or dep.tpm):
            return None
        key = f"rate:deployment:{dep.name}"
        now = time.time()
        tokens = f.input_tokens + f.output_tokens
        if self.store.rate_wait(key, now, dep.rpm, dep.tpm, tokens) <= 0:
            return None
        reqs, toks = self.store.rate_used(key, now)
        if dep.rpm and reqs >= dep.rpm:
            return f"rpm limit reached ({reqs}/{dep.rpm} in the last minute)"
        return f"tpm limit reached ({toks}/{dep.tpm} in the last minute)"

    def adjust(self, taken: list[tuple[str, object]], tokens: int) -> None:
        for key, ticket in taken:
            self.store.rate_adjust(key, ticket, tokens)

    def refund(self, taken: list[tuple[str, object]]) -> None:
        for key, ticket in taken:
            self.store.rate_refund(key, ticket)
