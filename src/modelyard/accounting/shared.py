"""Admission over shared state (`state: redis://…`): one Redis round trip per request.

`SharedAdmit.admit` replaces `Accounting.admit` when the state store is shared: the request's rate
takes (every limit of the caller) and budget reservations (key, team, user) go to ONE script call
that does all of them or none. Settles, token recounts and refunds are queued by the store and
flushed in batches in the background, so nothing after admission waits for Redis. Deployment
rpm/tpm stay on the store's local mirror (state/redis.py).

While Redis is unreachable: a concern whose `state.on_failure` is `fail_closed` refuses with 503
`state_unavailable`; otherwise the request goes through the in-process path on the store's local
fallback (exactly what a single process with `state: memory` does).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

from ..errors import BudgetExceeded, RateLimited, Unavailable
from ..tokens import count_message_tokens, token_bound
from ..types import Caller, ChatRequest, RouteDecision, Usage
from .admission import _BUDGET_NOW, FREE, Accounting, Admission
from .budgets import Held, Period, _when
from .limits import refused

if TYPE_CHECKING:
    from ..routing import Route
    from ..state.redis import RedisState


class SharedAdmission(Admission):
    """An admission whose budget reservations live in Redis: settled through the store's queue."""

    __slots__ = ("store",)

    def __init__(self, acct: Accounting, store: RedisState, tokens: int, caller_slots: list[tuple[str, object]],
                 held: tuple[Held, ...], amount: float) -> None:
        super().__init__(acct, tokens, caller_slots, held, amount)
        self.store = store

    def settle(self, dep: str | None, usage: Usage | None, cost: float,
               decision: RouteDecision | None = None) -> None:
        if self.held:
            for h in self.held:
                self.store.settle_shared(h[0].scope, h[1].id, self.amount, cost, h)
            self.held = ()
        super().settle(dep, usage, cost, decision)

    def release(self) -> None:
        if self.held:
            for b, p in self.held:
                self.store.settle_shared(b.scope, p.id, self.amount, 0.0)
            self.held = ()
        super().release()


class SharedAdmit:
    """`Accounting.admit` over a `RedisState`."""

    def __init__(self, acct: Accounting, store: RedisState) -> None:
        self.acct = acct
        self.store = store
        self.policy = store.policy
        budgets = acct.budgets
        if budgets.on_spend is not None:
            store.on_settled = lambda h, spent: budgets.spend(h[0], h[1], spent)

    async def admit(self, req: ChatRequest, route: Route) -> Admission:
        caller = req.caller
        store = self.store
        if not store.up and self.policy.breakers == "fail_closed":
            raise _refuse("breakers")
        if not (caller.budgets or caller.limits):
            if not self.acct.limited_deployments:
                _BUDGET_NOW.set(None)
                return FREE
            return await Accounting.admit(self.acct, req, route)  # deployment windows: the local mirror
        if store.up:
            try:
                return await self._admit(req, route, caller)
            except Exception as e:
                if not _is_down(e):  # (Redis unreachable: the store marked itself down; fall back)
                    raise
        if caller.limits and self.policy.limits == "fail_closed":
            raise _refuse("limits")
        if caller.budgets and self.policy.budgets == "fail_closed":
            raise _refuse("budgets")
        return await Accounting.admit(self.acct, req, route)  # the local fallback

    async def _admit(self, req: ChatRequest, route: Route, caller: Caller) -> Admission:
        acct = self.acct
        needs_prompt = caller.budgets or acct.any_tpm or any(lim.tpm for lim in caller.limits)
        if not needs_prompt:
            return await self._take(req, route, caller, 0)
        bound = token_bound(req.messages)
        try:
            return await self._take(req, route, caller, bound)
        except (BudgetExceeded, RateLimited):
            exact = count_message_tokens(req.messages)
            if exact >= bound:
                raise
            return await self._take(req, route, caller, exact)

    async def _take(self, req: ChatRequest, route: Route, caller: Caller, prompt: int) -> Admission:
        """One ADMIT call (two the first time a budget's period is seen: the log seeds it)."""
        acct, store = self.acct, self.store
        now = time.time()
        tokens = prompt + (req.max_tokens or 0)
        limits = [lim for lim in caller.limits if lim.rpm or lim.tpm]
        rates = [(f"rate:{lim.scope}", lim.rpm or 0, lim.tpm or 0, tokens) for lim in limits]
        amount = 0.0
        periods: list[Period] = []
        if caller.budgets:
            worst_in, worst_out, cap = acct.worst.get(route.name, (0.0, 0.0, 4096))
            amount = (prompt * worst_in + (req.max_tokens or cap) * worst_out) / 1e6
            periods = [acct.budgets.periods(b.period, now) for b in caller.budgets]
        seeds: dict[int, str] = {}
        member = store.ticket_id()
        while True:
            budgets = [(b.scope, p.id, b.limit_usd, amount, seeds.get(j, ""), _ttl(p, now))
                       for j, (b, p) in enumerate(zip(caller.budgets, periods, strict=True))]
            res = await store.admit(rates, budgets, member)
            kind = res[0]
            if kind == "ok":
                break
            j = int(res[1]) - 1
            if kind == "seed" and j not in seeds:
                seeds[j] = repr(await self._logged(caller, j, periods[j]))
                continue
            if kind == "rate":
                lim = limits[j]
                wait = math.inf if res[2] == "inf" else float(res[2])
                raise refused(lim.scope, lim.rpm, lim.tpm, (int(res[3]), int(res[4])), tokens, wait)
            b, p = caller.budgets[j], periods[j]
            raise BudgetExceeded(
                f"budget {b.scope} ({b.period}, ${b.limit_usd:.2f}) exceeded: ${float(res[2]):.4f} spent, "
                f"${float(res[3]):.4f} held by requests in flight, this request may cost up to ${amount:.4f}; "
                f"{_when(p)}", code="budget_exceeded")
        held = tuple(zip(caller.budgets, periods, strict=True))
        if acct.tracks_budget and held:
            best: tuple[float, float] | None = None
            for j, b in enumerate(caller.budgets):
                used = float(res[1 + 2 * j]) + float(res[2 + 2 * j])
                if best is None or b.limit_usd - used < best[1] - best[0]:
                    best = (used, b.limit_usd)
            assert best is not None
            _BUDGET_NOW.set((best[0] - amount, best[1]))
        else:
            _BUDGET_NOW.set(None)
        return SharedAdmission(acct, store, tokens, [(key, member) for key, *_ in rates], held, amount)

    async def _logged(self, caller: Caller, j: int, p: Period) -> float:
        """The request log's spend of the budget in `p` (the shared ledger starts from it)."""
        b = caller.budgets[j]
        budgets = self.acct.budgets
        spent = await asyncio.to_thread(budgets._logged_spend, b.scope, p.start)
        budgets.spend(b, p, spent, True)
        return spent


def _ttl(p: Period, now: float) -> int:
    """A ledger outlives its period by a week (spend queries right after a rollover), then goes."""
    return 0 if p.reset is None else int(p.reset - now) + 7 * 86400


def _is_down(e: BaseException) -> bool:
    from ..state.redis import DOWN_ERRORS

    return isinstance(e, DOWN_ERRORS)


def _refuse(concern: str) -> Unavailable:
    return Unavailable(f"shared state (Redis) is unreachable and state.on_failure.{concern} is fail_closed: "
                       "retry shortly", code="state_unavailable")
