"""`GET /metrics`: the Prometheus text format of telemetry/metrics.py.

Who may read it: the master key, the separate `server.metrics_key` (for a scraper that must not hold
the master key), or anyone when `server.metrics_public` is true. A server without a master key
(loopback only) serves it to anyone who can reach it, like the admin endpoints.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

from ..errors import Auth
from ..secret_refs import resolve_secret
from ..telemetry import metrics
from .http import content_length, raw_header

if TYPE_CHECKING:
    from .app import App
    from .http import Receive, Scope, Send

REFRESH_S = 1.0  # workers publish their in-flight count and breaker states this often


def install(app: App) -> None:
    """Feed metrics from every finished request and serve them at GET /metrics (when
    `telemetry.metrics` is on, the default)."""
    gw = app.gateway
    if not gw.config.telemetry.metrics:
        return
    server = gw.config.server
    m = metrics.GatewayMetrics(gw, inflight=lambda: app._inflight)
    gw.observers.append(m.observe)
    metrics.ACTIVE = m
    secret = resolve_secret(server.metrics_key, where="server.metrics_key")
    key = secret.encode() if secret else None
    public = server.metrics_public
    content_type = (b"content-type", metrics.CONTENT_TYPE.encode())

    def allowed(scope: Scope) -> None:
        if public:
            return
        if key is not None:
            sent = raw_header(scope, b"authorization") or b""
            scheme, _, token = sent.strip().partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key):
                return
            api_key = raw_header(scope, b"x-api-key")
            if api_key and hmac.compare_digest(api_key.strip(), key):
                return
        try:
            app.check_admin(scope)
        except Auth:
            raise Auth("GET /metrics needs the metrics key or the master key: send 'Authorization: Bearer "
                       "<key>'") from None

    async def handler(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        allowed(scope)
        # several workers: the exposition reads every worker's files, off the event loop
        body = await asyncio.to_thread(m.exposition) if m.multiprocess else m.exposition()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [content_type, (b"x-request-id", rid.encode()), content_length(body)]})
        await send({"type": "http.response.body", "body": body})

    app.add_route("GET", "/metrics", handler)
    if m.multiprocess:  # a scrape reaches one worker: each keeps its own present-state gauges current
        started = app.on_started

        def on_started() -> None:
            if started is not None:
                started()
            loop = asyncio.get_running_loop()

            def tick() -> None:
                m.refresh()
                loop.call_later(REFRESH_S, tick)

            tick()

        app.on_started = on_started
