"""The admin HTTP API: virtual keys, teams, users and spend. Master key only.

    POST   /admin/keys                  {name, team, user, budget_usd, budget_period, soft_budget_pct,
                                         rpm, tpm, models, expires_at, metadata, log_content} → 201 {id, key, ...}
    GET    /admin/keys[?team=&user=&include_revoked=true]
    GET    /admin/keys/{id}   PATCH /admin/keys/{id}   DELETE /admin/keys/{id} (revoke)
    POST   /admin/keys/{id}/rotate      → {id, key, ...}: a new secret, the old one refused at once
    POST/GET /admin/teams, GET/PATCH/DELETE /admin/teams/{name}   (and the same for /admin/users)
    GET    /admin/spend?by=key|team|user|model|deployment&since=7d&until=…[&team=…&key=…]

Keys, teams and users are managed only with the master key: a server without one answers 403 and
points at `modelyard keys --config FILE`, which works on the database without a server (otherwise the
first key created would lock its creator out). Spend follows `App.check_admin`. Database work runs in
a thread (accounting/admin.py); the key ring is updated as soon as the database took a change.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson

from ..accounting.admin import Admin
from ..accounting.when import iso, parse_instant
from ..errors import BadRequest, NotFound, PermissionDenied
from ..store.location import locate
from ..store.spend import BY, spend
from .http import MethodNotAllowed, Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from .app import App

DEFAULT_SINCE = "30d"


def install(app: App) -> None:
    """Add the admin routes to `app`."""
    admin: list[Admin] = []

    def manager(scope: Scope) -> Admin:
        app.check_admin(scope)
        if app.auth.master is None:
            raise PermissionDenied("managing keys, teams and users over HTTP needs a master key (server.master_key "
                                   "or MODELYARD_MASTER_KEY); without one, use `modelyard keys --config FILE` on "
                                   "the server's database")
        if not admin:
            gw = app.gateway
            admin.append(Admin(app.auth.ring, {*gw.routes, *gw.pipelines}))
        return admin[0]

    async def reply(send: Send, status: int, body: Any, rid: str) -> None:
        await send_json(send, status, orjson.dumps(body), rid)

    async def keys_root(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        a = manager(scope)
        if scope["method"] == "POST":
            await reply(send, 201, await a.create_key(await app.read_json(scope, receive)), rid)
            return
        q = _query(scope)
        include = q.get("include_revoked", "false").lower() in ("1", "true", "yes")
        await reply(send, 200, a.list_keys(team=q.get("team"), user=q.get("user"), include_revoked=include), rid)

    async def key_item(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        a = manager(scope)
        rest = unquote(scope["path"][len("/admin/keys/"):]).strip("/")
        method = scope["method"]
        key_id, _, action = rest.partition("/")
        if method == "POST" and not action:
            raise MethodNotAllowed(f"method POST is not allowed on {scope['path']}; see POST /admin/keys/{{id}}/rotate")
        if action:
            if action != "rotate" or method != "POST":
                raise NotFound(f"no route {method} {scope['path']}; see POST /admin/keys/{{id}}/rotate")
            await reply(send, 200, await a.rotate_key(key_id), rid)
        elif method == "GET":
            await reply(send, 200, a.get_key(key_id), rid)
        elif method == "PATCH":
            await reply(send, 200, await a.update_key(key_id, await app.read_json(scope, receive)), rid)
        else:  # DELETE
            await reply(send, 200, await a.revoke_key(key_id), rid)

    for method in ("POST", "GET"):
        app.add_route(method, "/admin/keys", keys_root)
    for method in ("GET", "PATCH", "DELETE", "POST"):
        app.add_prefix_route(method, "/admin/keys/", key_item)

    for kind in ("team", "user"):
        _install_principals(app, kind, manager, reply)

    async def spend_route(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app.check_admin(scope)
        log = app.gateway.request_log
        path = log.path if log is not None else locate(app.gateway.config)
        if log is not None:
            await log.flush()  # what was answered before this query is counted in it
        q = _query(scope)
        body = await asyncio.to_thread(spend_report, path, q)
        if q.get("by", "key") == "key":
            records = app.auth.ring.records
            for g in body["groups"]:
                k = records.get(g["key"]) if g["key"] else None
                g["name"] = k.name if k is not None else None
        await reply(send, 200, body, rid)

    app.add_route("GET", "/admin/spend", spend_route)


def _install_principals(app: App, kind: str, manager: Any, reply: Any) -> None:
    prefix = f"/admin/{kind}s"

    async def root(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        a = manager(scope)
        if scope["method"] == "POST":
            await reply(send, 201, await a.create_principal(kind, await app.read_json(scope, receive)), rid)
        else:
            await reply(send, 200, a.list_principals(kind), rid)

    async def item(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        a = manager(scope)
        name = unquote(scope["path"][len(prefix) + 1:]).strip("/")
        if scope["method"] == "GET":
            await reply(send, 200, a.get_principal(kind, name), rid)
        elif scope["method"] == "PATCH":
            await reply(send, 200, await a.update_principal(kind, name, await app.read_json(scope, receive)), rid)
        else:
            await reply(send, 200, await a.delete_principal(kind, name), rid)

    for method in ("POST", "GET"):
        app.add_route(method, prefix, root)
    for method in ("GET", "PATCH", "DELETE"):
        app.add_prefix_route(method, prefix + "/", item)


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


SPEND_PARAMS = frozenset(("by", "since", "until", *BY))


def spend_report(path: str, q: dict[str, str], now: float | None = None) -> dict[str, Any]:
    """The spend answer for query parameters `q` (by, since, until, and filters key/team/user/model/
    deployment); BadRequest naming the parameter. Shared by the API and `modelyard spend --config`."""
    unknown = sorted(set(q) - SPEND_PARAMS)
    if unknown:
        raise BadRequest(f"unknown parameter '{unknown[0]}'; use by, since, until, {', '.join(BY)}", param=unknown[0])
    by = q.get("by", "key")
    if by not in BY:
        raise BadRequest(f"'by' must be one of {', '.join(BY)}", param="by")
    t = time.time() if now is None else now
    times = {}
    for name, default in (("since", DEFAULT_SINCE), ("until", None)):
        raw = q.get(name) or default
        try:
            times[name] = parse_instant(raw, now=t) if raw is not None else t + 1
        except ValueError as e:
            raise BadRequest(f"'{name}': {e}", param=name) from None
    if times["since"] >= times["until"]:
        raise BadRequest("'since' must be before 'until'", param="since")
    filters = {k: q[k] for k in BY if k in q}
    groups, total = spend(path, by, times["since"], times["until"], filters)
    return {"object": "spend", "by": by, "since": iso(times["since"]), "until": iso(times["until"]),
            "filters": filters, "groups": [g.as_json(by) for g in groups], "total": total.as_json(by) | {by: None}}
