"""The gateway's accounting stage: admit a request (rate limits, budget reservation) before routing,
keep routing within deployment limits, and settle what the call really cost after it.

`Accounting.admit` returns an `Admission` that the gateway keeps for the request and calls exactly
once at the end: `settle` (answered, or cut off: the real or estimated cost) or `release` (refused
or failed before costing anything). Requests with nothing to enforce get the shared no-op
`FREE` admission: no allocation, no lookups.

Multi-model modes (race, vote, judge, fuse, pipelines) reserve per sub-call: each sub-call goes back
through `Gateway.chat`/`.stream` with the parent's caller, so each is admitted, reserved and settled
on its own and the parent reserves nothing.
"""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING

from ..deployment import Deployment
from ..errors import BudgetExceeded, RateLimited
from ..routing.features import Features
from ..tokens import count_message_tokens, token_bound
from ..types import Caller, ChatRequest, RateLimit, RouteDecision, Usage
from .budgets import Budgets, Held
from .limits import Limits

if TYPE_CHECKING:
    from ..gateway import Gateway
    from ..routing import Route
    from ..state import AccountingStore
    from ..store.sqlite import RequestLog
    from .alerts import Alerts

# The admitted request's (spent, limit) of its tightest budget, for routing's `budget` hook (which
# sees features, not the caller); set by `admit` in the request's own task.
_BUDGET_NOW: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "modelyard_budget", default=None)


class Admission:
    """What one request holds: rate-limit slots and budget reservations (`amount` on each budget)."""

    __slots__ = ("acct", "amount", "caller_slots", "dep_slots", "held", "tokens")

    def __init__(self, acct: Accounting, tokens: int, caller_slots: list[tuple[str, object]],
                 held: tuple[Held, ...], amount: float) -> None:
        self.acct = acct
        self.tokens = tokens
        self.caller_slots = caller_slots
        self.held = held
        self.amount = amount
        self.dep_slots: dict[str, tuple[str, object]] = {}

    def route(self, chain: list[Deployment]) -> list[Deployment]:
        """Take a slot on every rate-limited deployment of the chain; full ones leave it (429 if
        nothing is left)."""
        if not self.acct.limited_deployments:
            return chain
        try:
            kept, taken, _ = self.acct.limits.take_chain(chain, self.tokens, time.time())
        except BaseException:
            self.release()
            raise
        self.dep_slots = {key.rpartition(":")[2]: (key, t) for key, t in taken}
        return kept

    def settle(self, dep: str | None, usage: Usage | None, cost: float,
               decision: RouteDecision | None = None) -> None:
        """The call ended on deployment `dep` having cost `cost` (None, 0: it failed): settle budgets,
        recount tokens, give back the slots of deployments it never reached."""
        acct = self.acct
        if self.held:
            acct.budgets.settle(self.held, self.amount, cost)
            self.held = ()
        tokens = usage.input_tokens + usage.output_tokens if usage is not None else self.tokens  # (billed)
        if self.caller_slots:
            store = acct.limits.store
            for key, ticket in self.caller_slots:
                store.rate_adjust(key, ticket, tokens)
            self.caller_slots = []
        if self.dep_slots:
            limits = acct.limits
            reached = set(decision.fallbacks) if decision is not None else set()
            for name, slot in self.dep_slots.items():
                if name == dep:
                    limits.adjust([slot], tokens)
                elif name not in reached:
                    limits.refund([slot])
            self.dep_slots = {}

    def cancelled(self, exc: BaseException, decision: RouteDecision | None) -> None:
        """The call was cut off: settle to what the gateway estimated the provider bills (the
        prompt, noted on the exception by `Gateway._log_cancelled`), or release."""
        charge = getattr(exc, "modelyard_charge", None)
        if charge is None:
            self.release()
        else:
            self.settle(charge[0], charge[1], charge[2], decision)

    def release(self) -> None:
        """Nothing was sent: give everything back."""
        limits = self.acct.limits
        self.acct.budgets.release(self.held, self.amount)
        limits.refund(self.caller_slots)
        limits.refund(list(self.dep_slots.values()))
        self.held, self.caller_slots, self.dep_slots = (), [], {}


class _Free(Admission):
    """Nothing to enforce."""

    def __init__(self) -> None:
        pass

    def route(self, chain: list[Deployment]) -> list[Deployment]:
        return chain

    def settle(self, dep: str | None, usage: Usage | None, cost: float,
               decision: RouteDecision | None = None) -> None:
        return None

    def cancelled(self, exc: BaseException, decision: RouteDecision | None) -> None:
        return None

    def release(self) -> None:
        return None


FREE: Admission = _Free()


PLANS_MAX = 4096


class _Plan:
    """One caller's admission, worked out once per UTC day: its rate windows (store key and limit),
    its budgets with their periods, whether the store holds those periods yet, and whether the
    prompt must be counted (budgets or tpm)."""

    __slots__ = ("caller", "day", "held", "known", "needs_prompt", "rates")

    def __init__(self, caller: Caller, day: float, rates: tuple[tuple[str, RateLimit], ...],
                 held: tuple[Held, ...], known: bool, needs_prompt: bool) -> None:
        self.caller = caller  # (kept: the cache is keyed by its id)
        self.day = day
        self.rates = rates
        self.held = held
        self.known = known
        self.needs_prompt = needs_prompt


class Accounting:
    """Built once by the gateway: limits and budgets over one `AccountingStore`."""

    @classmethod
    def for_gateway(cls, gw: Gateway) -> Accounting:
        """Wire accounting into a gateway: shared state, routing hooks, alerts (an observer)."""
        from .alerts import Alerts

        alerts = Alerts(gw.config.alerts)
        acct = cls(gw.resilience.store, gw.routes, gw.request_log, alerts)
        gw.observers.append(alerts.observe)
        if acct.limited_deployments:  # enforced windows replace the router's own per-minute meter
            gw.router.hooks.headroom = acct.headroom_hook
        if any(g.strategy == "budget-aware" for g in gw.config.model_groups.values()):
            gw.router.hooks.budget = acct.budget_hook  # (set only where read: it turns off routing's fast path)
            acct.tracks_budget = True
        return acct

    async def start(self) -> None:
        if self.alerts is not None:
            await self.alerts.start(self.log)

    async def close(self) -> None:
        if self.alerts is not None:
            await self.alerts.close()

    def __init__(self, store: AccountingStore, routes: dict[str, Route], log: RequestLog | None,
                 alerts: Alerts | None = None) -> None:
        self.alerts = alerts
        self.limits = Limits(store)
        self.log = log
        self.budgets = Budgets(store, log, alerts.budget_spend if alerts is not None else None)
        # Per route, the most a token can cost on any deployment it may use, and the largest output
        # cap: the worst case a budget reservation prices.
        self.worst: dict[str, tuple[float, float, int]] = {}
        for name, r in routes.items():
            cards = [d.card for d in (*r.deployments, *r.fallbacks)]
            self.worst[name] = (max(c.worst_input_per_m for c in cards), max(c.worst_output_per_m for c in cards),
                                max(c.max_output for c in cards))
        self._plans: dict[int, _Plan] = {}  # id(caller) -> its plan
        self.tracks_budget = False  # whether routing reads the admitted request's budget (budget_hook)
        self.limited_deployments = any(d.rpm or d.tpm for r in routes.values() for d in r.deployments)
        self.any_tpm = any(d.tpm for r in routes.values() for d in r.deployments)
        if getattr(store, "shared", False):  # Redis: one script call admits (accounting/shared.py)
            from .shared import SharedAdmit

            self.admit = SharedAdmit(self, store).admit  # type: ignore[method-assign, arg-type]

    async def admit(self, req: ChatRequest, route: Route) -> Admission:
        """Take the caller's rate limits and reserve its budgets, or raise 429."""
        caller = req.caller
        if not (caller.budgets or caller.limits or self.limited_deployments):
            _BUDGET_NOW.set(None)
            return FREE
        now = time.time()
        plan = self._plans.get(id(caller))
        if plan is None or plan.caller is not caller or plan.day != now // 86400:
            plan = self._plan(caller, now)
        if not plan.known:  # the first request of a budget's period: its spend so far, from the log
            await self.budgets.load(plan.held)
            plan.known = True
        # The prompt prices a reservation and counts against tpm (rpm alone needs neither). Both are
        # settled to the billed usage after the call, so the cheap upper bound (characters) serves
        # while it fits; only a request the bound would refuse is counted exactly and tried again.
        if not plan.needs_prompt:
            return self._take(req, route, plan, 0, now)
        bound = token_bound(req.messages)
        try:
            return self._take(req, route, plan, bound, now)
        except (BudgetExceeded, RateLimited):
            exact = count_message_tokens(req.messages)
            if exact >= bound:
                raise
            return self._take(req, route, plan, exact, now)

    def _plan(self, caller: Caller, now: float) -> _Plan:
        """What admitting `caller` takes today, kept for its next requests (a bounded cache: callers
        are the key ring's, one per key, replaced when the key changes)."""
        if len(self._plans) >= PLANS_MAX:
            self._plans = {}
        held = self.budgets.held(caller.budgets, now)
        plan = self._plans[id(caller)] = _Plan(
            caller, now // 86400, tuple((f"rate:{lim.scope}", lim) for lim in caller.limits if lim.rpm or lim.tpm),
            held, self.budgets.known(held),
            bool(caller.budgets or self.any_tpm or any(lim.tpm for lim in caller.limits)))
        return plan

    def _take(self, req: ChatRequest, route: Route, plan: _Plan, prompt: int, now: float) -> Admission:
        """Take the caller's rate limits for `prompt` tokens and reserve its budgets' worst case."""
        tokens = prompt + (req.max_tokens or 0)  # (rpm/tpm: recounted to the billed total after the call)
        slots = self.limits.take_caller(plan.rates, tokens, now) if plan.rates else []
        held = plan.held
        if not held:
            _BUDGET_NOW.set(None)
            return Admission(self, tokens, slots, (), 0.0)
        worst_in, worst_out, cap = self.worst.get(route.name, (0.0, 0.0, 4096))
        amount = (prompt * worst_in + (req.max_tokens or cap) * worst_out) / 1e6
        try:
            self.budgets.reserve(held, amount)
        except BaseException:
            self.limits.refund(slots)
            raise
        if self.tracks_budget:
            spent, limit = self.budgets.usage(plan.caller.budgets, now) or (0.0, 0.0)
            _BUDGET_NOW.set((spent - amount, limit))  # (before this request's own reservation)
        return Admission(self, tokens, slots, held, amount)

    def budget_hook(self, f: Features) -> tuple[float, float] | None:
        """Routing's `budget` hook: the admitted request's tightest budget as (spent, limit)."""
        return _BUDGET_NOW.get()

    def headroom_hook(self, dep: Deployment, f: Features) -> str | None:
        """Routing's `headroom` hook: the deployment's own sliding windows."""
        return self.limits.headroom(dep, f)
