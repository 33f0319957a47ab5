"""`GET /admin/experiments` and `GET /admin/experiments/{name}`: each experiment's per-variant report
and verdict (experiments/report.py), read from the request log. Master key only. `?since=<unix time>`
restricts the report to requests logged since then.

    {"experiments": [{"name", "group", "unit", "metric", "enabled", "level", "min_effect", "unassigned",
                      "variants": [{"name", "share_pct", "overrides", "requests", "successes",
                                    "success_rate", "success_rate_ci", "latency_p50_ms", "latency_p50_ms_ci",
                                    "latency_p95_ms", "latency_p95_ms_ci", "cost_per_request_usd",
                                    "cost_per_request_usd_ci", "feedback_mean", "feedback_mean_ci", ...,
                                    "vs_control": {...}, "outcome"}],
                      "verdict": "...", "verdicts": [...]}]}
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from ..errors import BadRequest, ModelyardError, NotFound
from ..experiments import service
from ..experiments.data import LogUnreadable
from .http import Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from .app import App

PREFIX = "/admin/experiments/"
FLUSH_WAIT_S = 1.0  # how long a report waits for the request log to write what it holds


class ReportUnavailable(ModelyardError):
    status = 503
    type = "store_unavailable"
    anthropic_type = "overloaded_error"


def install(app: App) -> None:
    async def list_all(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app.check_admin(scope)
        path, since = await _ready(app, scope)
        try:
            out = await asyncio.to_thread(service.reports, app.gateway.config, path, since=since)
        except LogUnreadable as e:
            raise ReportUnavailable(str(e)) from None
        await send_json(send, 200, _dumps({"experiments": out}), rid)

    async def one(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app.check_admin(scope)
        name = scope["path"][len(PREFIX):].rstrip("/")
        if name not in app.gateway.config.experiments:
            raise NotFound(str(service.UnknownExperiment(name, list(app.gateway.config.experiments))),
                           code="experiment_not_found")
        path, since = await _ready(app, scope)
        try:
            out = await asyncio.to_thread(service.report, app.gateway.config, path, name, since=since)
        except LogUnreadable as e:
            raise ReportUnavailable(str(e)) from None
        await send_json(send, 200, _dumps(out), rid)

    app.add_route("GET", "/admin/experiments", list_all)
    app.add_prefix_route("GET", PREFIX, one)


async def _ready(app: App, scope: Scope) -> tuple[str, float | None]:
    """The log's path once what it holds is written (waiting at most FLUSH_WAIT_S), and `since`."""
    since = _since(scope)
    log = app.gateway.request_log
    if log is None:
        raise BadRequest("experiments are measured from the request log, which is disabled on this gateway")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(log.flush()), FLUSH_WAIT_S)
    return log.path, since


def _since(scope: Scope) -> float | None:
    qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    raw = qs.get("since")
    if not raw:
        return None
    try:
        value = float(raw[-1])
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadRequest("'since' must be a Unix time in seconds", param="since")
    return value


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc)  # NaN and infinities become null
