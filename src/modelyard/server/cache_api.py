"""The response cache over HTTP: the request's `Cache-Control` header, the `x-modelyard-cache`
response headers, and the admin endpoints (master key only):

- `DELETE /admin/cache` clears every entry, or one group's (`?group=`) and/or one tenant's
  (`?tenant=master`, `?tenant=key:<id>`); answers `{"deleted": n}`.
- `GET /admin/cache/stats`: entries, hits, semantic hits, misses, stores, saved cost (since start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from ..errors import BadRequest
from ..types import ChatRequest
from .http import Receive, Scope, Send, header, send_json

if TYPE_CHECKING:
    from .app import App


def directive(scope: Scope, req: ChatRequest) -> None:
    """Carry the request's Cache-Control header to the cache policy (cache/policy.py)."""
    cc = header(scope, b"cache-control")
    if cc:
        req.metadata["cache_control"] = cc


def headers(kind: str | None, similarity: float | None) -> list[tuple[bytes, bytes]]:
    """`x-modelyard-cache: hit|semantic-hit|miss` (+ similarity) when the cache was consulted."""
    if kind is None:
        return []
    out = [(b"x-modelyard-cache", kind.encode())]
    if similarity is not None:
        out.append((b"x-modelyard-cache-similarity", b"%.4f" % similarity))
    return out


def _query(scope: Scope) -> dict[str, str]:
    q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    unknown = set(q) - {"group", "tenant"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {', '.join(sorted(unknown))}; use group= and/or tenant=")
    return {k: v[-1] for k, v in q.items()}


def install(app: App) -> None:
    cache = app.gateway.cache

    async def clear(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app.check_admin(scope)
        q = _query(scope)
        deleted = await cache.clear(group=q.get("group"), tenant=q.get("tenant"))
        body: dict[str, Any] = {"deleted": deleted, **q}
        await send_json(send, 200, orjson.dumps(body), rid)

    async def stats(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app.check_admin(scope)
        await send_json(send, 200, orjson.dumps(await cache.stats()), rid)

    app.add_route("DELETE", "/admin/cache", clear)
    app.add_route("GET", "/admin/cache/stats", stats)
