"""`GET /admin/budgets` (master key): every budget scope — keys (config and database), teams, users —
with its limit, period, spend, what requests in flight hold, when it resets, the share used and the
soft-limit state (accounting/budget_view.py). `?kind=key|team|user` keeps one kind.

It also feeds `modelyard_budget_used_ratio{scope}` (scope = the kind, never an id): at each scrape,
the highest used ratio of each kind, from the ledgers (read at most every `RATIO_EVERY_S`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson

from ..accounting.budget_view import KINDS, BudgetView
from ..errors import BadRequest
from ..telemetry import metrics
from .http import send_json

if TYPE_CHECKING:
    from .app import App
    from .http import Receive, Scope, Send

RATIO_EVERY_S = 2.0


def install(app: App) -> None:
    """Add GET /admin/budgets to `app` and report budget ratios to its metrics (when on)."""
    view = BudgetView(app.gateway.accounting, app.auth.ring)

    async def handler(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app.check_admin(scope)
        q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        kind = (q.get("kind") or [None])[0]
        if kind is not None and kind not in KINDS:
            raise BadRequest(f"'kind' must be one of {', '.join(KINDS)}", param="kind")
        rows = await asyncio.to_thread(view.rows)
        if kind is not None:
            rows = [r for r in rows if r["kind"] == kind]
        await send_json(send, 200, orjson.dumps({"object": "list", "budgets": rows, "generated_at": time.time()}), rid)

    app.add_route("GET", "/admin/budgets", handler)
    m = metrics.ACTIVE
    if m is not None and m.gateway is app.gateway:
        last = [0.0]

        def report() -> None:
            now = time.monotonic()
            if now - last[0] < RATIO_EVERY_S:
                return
            last[0] = now
            for kind, ratio in view.ratios().items():
                m.budget_ratio(kind, ratio)

        m.on_refresh.append(report)
