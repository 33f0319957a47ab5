"""Budgets: reserve a request's worst case before the call, settle to its real cost after.

Every budget of the caller (key, team, user: `Caller.budgets`) is reserved in `state/` with one
atomic check-and-reserve against limit − spent − reserved; if any refuses, the ones taken are given
back and the request gets 429 `budget_exceeded` naming the budget, its limit, its spend and when it
resets. The worst case is the prompt estimate plus `max_tokens` (or the card's output cap), priced at
the most expensive deployment the route could use (its candidates and fallbacks): reservation
happens before routing, and any of them may serve the request. So concurrent requests cannot
overspend: the only overshoot left is a provider billing more prompt tokens than estimated.

Spend survives a restart: the first time a scope is used in a period, its spend so far is read
from the request log (a SQL sum over the period, in a thread) before anything is reserved.
Periods are calendar UTC: a day, an ISO week (from Monday), a month; `total` never resets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BudgetExceeded, Unavailable
from ..state import AccountingStore
from ..store.keys import StoreError
from ..store.sqlite import RequestLog
from ..types import Budget

_UTC = dt.UTC
_COLUMN = {"key": "key_id", "team": "team", "user": "user"}


@dataclass(frozen=True, slots=True)
class Period:
    id: str  # "2026-12-05", "2026-W49", "2026-12", "total"
    start: float  # epoch seconds (UTC)
    reset: float | None  # when the next period starts; None: never


def period_of(kind: str, now: float) -> Period:
    """The calendar UTC period of `kind` that contains `now`."""
    if kind == "total":
        return Period("total", 0.0, None)
    day = dt.datetime.fromtimestamp(now, _UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "daily":
        start, end, pid = day, day + dt.timedelta(days=1), day.strftime("%Y-%m-%d")
    elif kind == "weekly":
        start = day - dt.timedelta(days=day.weekday())
        iso = start.isocalendar()
        end, pid = start + dt.timedelta(days=7), f"{iso.year}-W{iso.week:02d}"
    else:  # monthly
        start = day.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
        pid = start.strftime("%Y-%m")
    return Period(pid, start.timestamp(), end.timestamp())


class PeriodClock:
    """`period_of`, computed once per UTC day and kind instead of once per request."""

    def __init__(self) -> None:
        self._day = -1
        self._periods: dict[str, Period] = {}

    def __call__(self, kind: str, now: float) -> Period:
        day = int(now // 86400)
        if day != self._day:
            self._day, self._periods = day, {}
        p = self._periods.get(kind)
        if p is None:
            p = self._periods[kind] = period_of(kind, now)
        return p


def _when(p: Period) -> str:
    if p.reset is None:
        return "it does not reset (period: total)"
    return "it resets " + dt.datetime.fromtimestamp(p.reset, _UTC).strftime("%Y-%m-%dT%H:%MZ")


Held = tuple[Budget, Period]  # one budget reserved for a request, in the period it was reserved in


class Budgets:
    """Reservations against the caller's budgets, backed by an `AccountingStore` and the request log.

    A request's budgets come as (budget, period) pairs that the caller works out once per UTC day
    (`held`); each is reserved and settled with one store call. `on_spend` (alerts) is told a
    budget's spend when a threshold can have been crossed: it answers the spend below which the
    next one cannot be, and settles under it compare two numbers."""

    def __init__(self, store: AccountingStore, log: RequestLog | None,
                 on_spend: Callable[[Budget, Period, float, bool], float] | None = None) -> None:
        self.store = store
        self.log = log
        self.on_spend = on_spend  # alerts: called with a budget's spend after a settle or a load
        self.periods = PeriodClock()
        self._loading: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._quiet: dict[str, tuple[Budget, Period, float]] = {}  # scope -> (b, p, spend of the next alert)

    def held(self, budgets: tuple[Budget, ...], now: float) -> tuple[Held, ...]:
        """Each budget with its period as of `now` (the same for the whole UTC day)."""
        return tuple((b, self.periods(b.period, now)) for b in budgets)

    def known(self, held: tuple[Held, ...]) -> bool:
        """Whether the store holds every budget's period already (else `load` first)."""
        return all(self.store.budget_known(b.scope, p.id) for b, p in held)

    async def load(self, held: tuple[Held, ...]) -> None:
        """Seed the ledgers the store does not hold yet with their spend from the request log."""
        for b, p in held:
            if not self.store.budget_known(b.scope, p.id):
                await self._load(b, p)

    def reserve(self, held: tuple[Held, ...], amount: float) -> None:
        """Reserve `amount` on every budget, or none and raise BudgetExceeded (`load` first)."""
        store = self.store
        for b, p in held:
            ok, spent, reserved = store.budget_reserve(b.scope, p.id, b.limit_usd, amount)
            if not ok:
                self.release(held[:held.index((b, p))], amount)
                raise BudgetExceeded(
                    f"budget {b.scope} ({b.period}, ${b.limit_usd:.2f}) exceeded: ${spent:.4f} spent, "
                    f"${reserved:.4f} held by requests in flight, this request may cost up to ${amount:.4f}; "
                    f"{_when(p)}", code="budget_exceeded")

    def settle(self, held: tuple[Held, ...], amount: float, cost: float) -> None:
        """Replace each reservation of `amount` by the real cost."""
        store, on_spend = self.store, self.on_spend
        for b, p in held:
            spent = store.budget_settle(b.scope, p.id, amount, cost)
            if on_spend is not None:
                quiet = self._quiet.get(b.scope)
                if quiet is None or spent >= quiet[2] or quiet[1] is not p or quiet[0] is not b:
                    self.spend(b, p, spent)

    def spend(self, b: Budget, p: Period, spent: float, loaded: bool = False) -> None:
        """Tell `on_spend` a budget's spend; note how far it may grow before telling again."""
        if self.on_spend is not None:
            self._quiet[b.scope] = (b, p, self.on_spend(b, p, spent, loaded))

    def release(self, held: tuple[Held, ...], amount: float) -> None:
        """Give reservations back (the call failed before costing anything)."""
        for b, p in held:
            self.store.budget_settle(b.scope, p.id, amount, 0.0)

    def usage(self, budgets: tuple[Budget, ...], now: float) -> tuple[float, float] | None:
        """(spent, limit) of the budget with the least room left, for routing's `budget` hook."""
        best: tuple[float, float] | None = None
        for b in budgets:
            spent, reserved = self.store.budget_spend(b.scope, self.periods(b.period, now).id)
            if best is None or b.limit_usd - spent - reserved < best[1] - best[0]:
                best = (spent + reserved, b.limit_usd)
        return best

    # --- spend so far, from the request log -----------------------------------------------------
    async def _load(self, b: Budget, p: Period) -> None:
        """Seed the scope's ledger with its logged spend in `p`: once, however many requests wait."""
        k = (b.scope, p.id)
        fut = self._loading.get(k)
        if fut is not None:
            await asyncio.shield(fut)
            return
        fut = self._loading[k] = asyncio.get_running_loop().create_future()
        try:
            spent = await asyncio.to_thread(self._logged_spend, b.scope, p.start)
            self.store.budget_seed(b.scope, p.id, spent)
            self.spend(b, p, spent, True)
            fut.set_result(None)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # (retrieved: waiters re-raise it)
            raise
        finally:
            del self._loading[k]

    def _logged_spend(self, scope: str, since: float) -> float:
        kind, _, name = scope.partition(":")
        column = _COLUMN.get(kind)
        if column is None or self.log is None:
            return 0.0
        try:
            return self.log.spent_since(column, name, since)  # SQLite or Postgres (store/)
        except StoreError as e:
            raise Unavailable(f"cannot read the spend of budget {scope} from the request log: {e}") from None
