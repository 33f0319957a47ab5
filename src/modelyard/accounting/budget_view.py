"""Every budget the server enforces, with where it stands now: for `GET /admin/budgets`, the
dashboard's budgets panel and the `modelyard_budget_used_ratio` gauge. Read-only: it reads the
ledgers of `state/` through `Budgets.store` and never seeds or changes one.

The scopes come from the key ring: each live key with a budget (declared in the config or created
over the API), and each team and user with one (whether or not a key uses it yet). A scope this
process has already served in the current period has a ledger (spent, and what requests in flight
hold); one it has not is read from the request log — what enforcement would seed it with — in a
worker thread, remembered for `LOG_TTL_S` so a polling dashboard does not repeat the sums.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..types import Budget

if TYPE_CHECKING:
    from .admission import Accounting
    from .keys import KeyRing

LOG_TTL_S = 10.0
KINDS = ("key", "team", "user")
_COLUMN = {"key": "key_id", "team": "team", "user": "user"}


@dataclass(frozen=True, slots=True)
class Scope:
    budget: Budget
    kind: str  # key | team | user
    name: str  # the key id, team or user name
    label: str | None  # a key's name
    source: str  # "config" (a key in the config file) | "api" (the database)


def scopes(ring: KeyRing, now: float) -> list[Scope]:
    """Every budget scope of the ring: live keys' own, then teams', then users'."""
    out: list[Scope] = []
    for k in sorted(list(ring.records.values()), key=lambda k: (k.created_at, k.id)):
        lim = k.limits
        if lim.budget_usd is None or k.revoked_at is not None or (k.expires_at is not None and k.expires_at <= now):
            continue
        out.append(Scope(Budget(f"key:{k.id}", lim.budget_usd, lim.budget_period,  # type: ignore[arg-type]
                                lim.soft_budget_pct), "key", k.id, k.name, k.source))
    for kind, principals in (("team", ring.teams), ("user", ring.users)):
        for name, p in sorted(principals.items()):
            lim = p.limits
            if lim.budget_usd is not None:
                out.append(Scope(Budget(f"{kind}:{name}", lim.budget_usd, lim.budget_period,  # type: ignore[arg-type]
                                        lim.soft_budget_pct), kind, name, None, "api"))
    return out


class BudgetView:
    """Reads budgets' standing from one gateway's accounting and key ring."""

    def __init__(self, acct: Accounting, ring: KeyRing) -> None:
        self.acct = acct
        self.ring = ring
        self._logged: dict[tuple[str, str], tuple[float, float]] = {}  # (scope, period id) -> (spent, read at)

    def _standing(self, s: Scope, now: float) -> tuple[Any, float | None, float, str]:
        """(period, spent or None when unknown, reserved, where the spend came from)."""
        budgets = self.acct.budgets
        p = budgets.periods(s.budget.period, now)
        if budgets.store.budget_known(s.budget.scope, p.id):
            spent, reserved = budgets.store.budget_spend(s.budget.scope, p.id)
            return p, spent, reserved, "ledger"
        cached = self._logged.get((s.budget.scope, p.id))
        return p, (cached[0] if cached is not None else None), 0.0, "log"

    def _read_log(self, todo: list[tuple[Scope, Any]]) -> None:
        """Sum the logged spend of scopes without a ledger (in a worker thread)."""
        log = self.acct.log
        now = time.monotonic()
        for s, p in todo:
            spent = 0.0
            if log is not None:
                try:
                    rows = log.query(f"SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE {_COLUMN[s.kind]} = ? "
                                     "AND ts >= ?", (s.name, p.start))
                    spent = float(rows[0][0]) if rows else 0.0
                except sqlite3.Error as e:
                    if "no such table" not in str(e):
                        raise
            self._logged[(s.budget.scope, p.id)] = (spent, now)

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        """Each scope's standing, as the API answers; reads the request log for scopes without a ledger
        (call it in a worker thread)."""
        t = time.time() if now is None else now
        all_scopes = scopes(self.ring, t)
        fresh = time.monotonic() - LOG_TTL_S
        todo = []
        for s in all_scopes:
            p = self.acct.budgets.periods(s.budget.period, t)
            if not self.acct.budgets.store.budget_known(s.budget.scope, p.id):
                cached = self._logged.get((s.budget.scope, p.id))
                if cached is None or cached[1] < fresh:
                    todo.append((s, p))
        if todo:
            self._read_log(todo)
        return [self._row(s, t) for s in all_scopes]

    def _row(self, s: Scope, now: float) -> dict[str, Any]:
        b = s.budget
        p, spent, reserved, source = self._standing(s, now)
        spent = spent or 0.0
        ratio = spent / b.limit_usd
        soft = None if b.soft_pct is None else ratio * 100 >= b.soft_pct
        state = "exceeded" if spent >= b.limit_usd else "soft" if soft else "ok"
        return {"scope": b.scope, "kind": s.kind, "name": s.name, "key_name": s.label, "source": s.source,
                "limit_usd": b.limit_usd, "period": b.period, "period_id": p.id, "spent_usd": round(spent, 8),
                "reserved_usd": round(reserved, 8), "remaining_usd": round(max(b.limit_usd - spent - reserved, 0.0), 8),
                "used_ratio": round(ratio, 6), "committed_ratio": round((spent + reserved) / b.limit_usd, 6),
                "soft_pct": b.soft_pct, "soft_limit_reached": soft, "state": state,
                "resets_at": None if p.reset is None else dt.datetime.fromtimestamp(p.reset, dt.UTC).isoformat(),
                "spend_from": source}

    def ratios(self, now: float | None = None) -> dict[str, float]:
        """The highest used ratio per scope kind, from ledgers and the log sums already read (no I/O
        of its own beyond the state store: for the metrics scrape)."""
        t = time.time() if now is None else now
        out: dict[str, float] = {}
        for s in scopes(self.ring, t):
            _, spent, _, _ = self._standing(s, t)
            r = (spent or 0.0) / s.budget.limit_usd
            if r >= out.get(s.kind, -1.0):
                out[s.kind] = r
        return out
