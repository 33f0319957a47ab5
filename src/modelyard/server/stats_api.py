"""The admin stats API (`/admin/stats/...`, master key) and the dashboard's static files (`/ui`).

Live figures come from a `Rolling` window that subscribes to `gateway.observers` at install (it
counts each finished request into one-second buckets, LIVE_SPAN_S long). A window longer than that
is read back from the request log (store/stats.py, in a thread), and `?source=log` asks for the log
whatever the window. The dashboard (ui/) and `modelyard stats --url` read these endpoints.

  GET /admin/stats/summary?window=5m          requests/s, error/fallback/cache-hit rates, cost, latency
  GET /admin/stats/timeseries?window=15m&step=10s   one point per step
  GET /admin/stats/models?window=15m          one line per deployment
  GET /admin/stats/routing?window=15m         per requested group: deployment mix, rules and reasons
  GET /admin/stats/breakers                   breaker state and health per deployment
  GET /admin/stats/spend?by=group|deployment|key|team&window=1h
  GET /admin/stats/features                   which optional panels' endpoints exist (experiments, budgets)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from ..errors import BadRequest, ModelyardError
from ..store import stats as log_stats
from ..store import stats_view as view
from ..store.rolling import Rolling
from . import ui_static
from .http import Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from ..gateway import Gateway
    from .app import App

LIVE_SPAN_S = 900.0  # 15 minutes of one-second buckets in memory
MAX_WINDOW_S = 90 * 86400.0
MAX_POINTS = 1000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LogNotReadable(ModelyardError):
    status = 503
    type = "stats_unavailable"


def parse_duration(text: str, name: str) -> float:
    """'90s', '15m', '2h', '7d' or plain seconds → seconds; BadRequest naming the parameter otherwise."""
    t = text.strip().lower()
    unit = _UNITS.get(t[-1:])
    number = t[:-1] if unit else t
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise BadRequest(f"{name}={text!r}: expected a duration like 30s, 15m, 2h or 7d", param=name) from None
    if not 0 < value <= MAX_WINDOW_S:
        raise BadRequest(f"{name}={text!r}: must be more than 0 and at most 90d", param=name)
    return value


class Stats:
    """The live window and where to read longer ones; the handlers' shared state."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.gateway: Gateway = app.gateway
        self.live = Rolling(span_s=LIVE_SPAN_S, bucket_s=1.0)
        self.gateway.observers.append(self.live.observe)
        log = self.gateway.request_log
        self.log_path: str | None = log.path if log is not None else None  # a file or Postgres (store/)

    async def window(self, scope: Scope, default: str, step_s: float | None = None
                     ) -> tuple[Rolling, float, float, dict[str, Any]]:
        """The Rolling to read for this request's `window` (and `source`), its bounds, and a note on both."""
        q = query(scope)
        window_s = parse_duration(q.get("window", default), "window")
        source = q.get("source", "auto")
        if source not in ("auto", "live", "log"):
            raise BadRequest(f"source={source!r}: expected auto, live or log", param="source")
        t1 = time.time()
        t0 = t1 - window_s
        use_log = source == "log" or (source == "auto" and window_s > LIVE_SPAN_S and self.log_path)
        if not use_log:
            meta = {"source": "live", "window_s": window_s}
            if window_s > LIVE_SPAN_S:
                meta["note"] = f"the request log is off: only the last {LIVE_SPAN_S:g} s are kept"
            return self.live, t0, t1, meta
        if self.log_path is None:
            raise BadRequest("source=log: the request log is off (server.request_log.enabled)", param="source")
        bucket = step_s or max(1.0, window_s / 120)
        try:
            r, cut = await log_stats.load_async(self.log_path, t0, t1, bucket)
        except log_stats.LogUnavailable as e:
            raise LogNotReadable(str(e)) from None
        meta = {"source": "log", "window_s": window_s}
        if cut:
            meta["note"] = f"only the newest {log_stats.MAX_ROWS} requests of the window were read"
        return r, t0, t1, meta


def query(scope: Scope) -> dict[str, str]:
    """The query string's parameters (the last value of each)."""
    raw = scope.get("query_string") or b""
    return {k: v[-1] for k, v in parse_qs(raw.decode("latin-1")).items()}


def breakers(gw: Gateway) -> dict[str, Any]:
    """Breaker state and health per deployment, from gateway.resilience."""
    health = gw.resilience.health
    snap = health.breaker.snapshot()
    now = time.monotonic()
    rows = []
    for name, h in health.by_name.items():
        b = snap.get(name, {})
        until = float(b.get("until") or 0.0)  # type: ignore[arg-type]
        rows.append({
            "deployment": name, "provider": gw.deployments[name].provider if name in gw.deployments else None,
            "state": b.get("state", h.circuit), "healthy": health.healthy(name, now),
            "cooldown_s": round(max(0.0, until - now), 2) if b.get("state") == "open" else 0.0,
            "opens": b.get("opens", 0), "consecutive_failures": h.failures, "inflight": h.inflight,
            "success_rate": round(h.success_rate, 4), "requests": h.requests,
            "ewma_latency_ms": None if h.ewma_latency_ms is None else round(h.ewma_latency_ms, 2),
            "ewma_ttft_ms": None if h.ewma_ttft_ms is None else round(h.ewma_ttft_ms, 2),
        })
    return {"deployments": rows}


OPTIONAL = {"experiments": ("/admin/experiments",), "budgets": ("/admin/budgets", "/admin/stats/budgets")}


def optional_panels(app: App) -> dict[str, str | None]:
    """The endpoints of other features this server has (others' modules add them), so the dashboard
    asks only for those and hides the panels of the rest instead of meeting 404s."""
    have = {path for method, path in app.routes if method == "GET"}
    return {panel: next((p for p in paths if p in have), None) for panel, paths in OPTIONAL.items()}


def install(app: App) -> None:
    """Add the stats API and the dashboard to `app`, and start counting its gateway's requests."""
    st = Stats(app)

    def admin(build: Any) -> Any:
        async def handler(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
            app.check_admin(scope)
            body = await build(scope)
            await send_json(send, 200, orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), rid)
        return handler

    async def summary(scope: Scope) -> dict[str, Any]:
        r, t0, t1, meta = await st.window(scope, "5m")
        return {**meta, **view.summary(r, t0, t1)}

    async def timeseries(scope: Scope) -> dict[str, Any]:
        q = query(scope)
        window_s = parse_duration(q.get("window", "15m"), "window")
        step_s = parse_duration(q.get("step", "10s"), "step")
        if window_s / step_s > MAX_POINTS:
            raise BadRequest(f"window/step gives {int(window_s / step_s)} points; at most {MAX_POINTS}: "
                             "take a longer step", param="step")
        r, t0, t1, meta = await st.window(scope, "15m", step_s)
        return {**meta, **view.timeseries(r, t0, t1, step_s)}

    async def models(scope: Scope) -> dict[str, Any]:
        r, t0, t1, meta = await st.window(scope, "15m")
        return {**meta, **view.models(r, t0, t1)}

    async def routing(scope: Scope) -> dict[str, Any]:
        r, t0, t1, meta = await st.window(scope, "15m")
        out = view.routing(r, t0, t1)
        for g in out["groups"]:
            route = st.gateway.routes.get(g["group"])
            if route is not None:
                g["configured_strategy"] = route.strategy
                g["is_group"] = route.is_group
        return {**meta, **out}

    async def spend(scope: Scope) -> dict[str, Any]:
        by = query(scope).get("by", "group")
        if by not in view.SPEND_BY:
            raise BadRequest(f"by={by!r}: expected one of {', '.join(view.SPEND_BY)}", param="by")
        r, t0, t1, meta = await st.window(scope, "1h")
        return {**meta, **view.spend(r, t0, t1, by)}

    async def breaker_states(scope: Scope) -> dict[str, Any]:
        return breakers(st.gateway)

    async def features(scope: Scope) -> dict[str, Any]:
        return optional_panels(app)

    for name, build in (("summary", summary), ("timeseries", timeseries), ("models", models),
                        ("routing", routing), ("spend", spend), ("breakers", breaker_states),
                        ("features", features)):
        app.add_route("GET", f"/admin/stats/{name}", admin(build))
    ui_static.install(app)
