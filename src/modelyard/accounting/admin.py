"""Administering keys, teams and users: validation of the JSON bodies, the database writes (in a
thread), and the key ring updated as soon as the database took a change.

One implementation behind both surfaces: the admin HTTP API (server/admin_api.py) and
`modelyard keys --config` (cli/keys.py, on the local database without a server). Records come back
as the JSON the API answers with; a key's plaintext appears only in the answer to create and rotate.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import orjson

from ..errors import BadRequest, ModelyardError, NotFound
from ..store import keys as store
from ..store.keys import KeyRecord, Limits, Principal
from .keys import PREFIX, KeyRing, hash_key, last4, new_key_id, new_secret
from .when import iso, parse_instant

PERIODS = ("daily", "weekly", "monthly", "total")
MAX_META_BYTES = 16 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_LIMIT_FIELDS = ("budget_usd", "budget_period", "soft_budget_pct", "rpm", "tpm", "metadata")
KEY_FIELDS = frozenset(("name", "team", "user", "models", "expires_at", "log_content", *_LIMIT_FIELDS))
PRINCIPAL_FIELDS = frozenset(("name", *_LIMIT_FIELDS))

T = TypeVar("T")


class Conflict(ModelyardError):
    status = 409
    type = "conflict_error"
    anthropic_type = "invalid_request_error"


class StoreUnavailable(ModelyardError):
    status = 503
    type = "store_unavailable"
    anthropic_type = "overloaded_error"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"2")]


# --- validation ----------------------------------------------------------------------------------

def _object(body: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object with fields of a {what}: {', '.join(sorted(allowed))}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field '{unknown[0]}'; a {what} has {', '.join(sorted(allowed))}", param=unknown[0])
    return body


def _opt_name(body: dict[str, Any], field: str) -> str | None:
    v = body.get(field)
    if v is None:
        return None
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise BadRequest(f"'{field}' must be a name of 1-128 letters, digits and . _ @ + - (starting with a "
                         "letter or digit)", param=field)
    return v


def _number(body: dict[str, Any], field: str, *, integer: bool = False, upper: float | None = None) -> Any:
    v = body.get(field)
    if v is None:
        return None
    ok = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok or not math.isfinite(v) or v <= 0 or (upper is not None and v >= upper):
        kind = "a positive integer" if integer else "a positive number"
        raise BadRequest(f"'{field}' must be {kind}" + (f" below {upper:g}" if upper else "") + " or null",
                         param=field)
    return v if integer else float(v)


def parse_limits(body: dict[str, Any], base: Limits = Limits()) -> Limits:
    """The budget and limit fields present in `body` applied over `base` (null clears a field)."""
    out = base
    if "budget_usd" in body:
        out = replace(out, budget_usd=_number(body, "budget_usd"))
    if "budget_period" in body:
        p = body["budget_period"]
        if p is None:
            p = "monthly"
        if p not in PERIODS:
            raise BadRequest(f"'budget_period' must be one of {', '.join(PERIODS)}", param="budget_period")
        out = replace(out, budget_period=p)
    if "soft_budget_pct" in body:
        out = replace(out, soft_budget_pct=_number(body, "soft_budget_pct", upper=100))
    for f in ("rpm", "tpm"):
        if f in body:
            out = replace(out, **{f: _number(body, f, integer=True)})
    if "metadata" in body:
        m = body["metadata"]
        if m is None:
            m = {}
        if not isinstance(m, dict):
            raise BadRequest("'metadata' must be a JSON object", param="metadata")
        if len(orjson.dumps(m)) > MAX_META_BYTES:
            raise BadRequest(f"'metadata' is larger than {MAX_META_BYTES} bytes of JSON", param="metadata")
        out = replace(out, metadata=m)
    return out


def _models(body: dict[str, Any], known: set[str] | None) -> tuple[str, ...] | None:
    v = body.get("models")
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(m, str) and m for m in v):
        raise BadRequest("'models' must be a list of model group, deployment or pipeline names, or null for "
                         "every model", param="models")
    if known is not None:
        for i, m in enumerate(v):
            if m not in known:
                raise BadRequest(f"models[{i}]: unknown model '{m}'; see GET /v1/models", param=f"models[{i}]")
    return tuple(dict.fromkeys(v))


def _log_content(body: dict[str, Any]) -> bool | None:
    v = body.get("log_content")
    if v is not None and not isinstance(v, bool):
        raise BadRequest("'log_content' must be true (keep this key's prompts and answers in the request log), "
                         "false (never) or null (its model group's setting, else the server's default)",
                         param="log_content")
    return v


def _expires(body: dict[str, Any], *, now: float) -> float | None:
    v = body.get("expires_at")
    if v is None:
        return None
    try:
        ts = parse_instant(v, ahead=True, now=now)
    except ValueError as e:
        raise BadRequest(f"'expires_at': {e}", param="expires_at") from None
    if ts <= now:
        raise BadRequest("'expires_at' is in the past", param="expires_at")
    return ts


# --- rendering -----------------------------------------------------------------------------------

def _limits_json(lim: Limits) -> dict[str, Any]:
    return {"budget_usd": lim.budget_usd, "budget_period": lim.budget_period,
            "soft_budget_pct": lim.soft_budget_pct, "rpm": lim.rpm, "tpm": lim.tpm, "metadata": lim.metadata}


def key_json(k: KeyRecord, now: float | None = None) -> dict[str, Any]:
    t = time.time() if now is None else now
    status = ("revoked" if k.revoked_at is not None else
              "expired" if k.expires_at is not None and k.expires_at <= t else "active")
    return {"object": "key", "id": k.id, "name": k.name, "key_hint": f"{PREFIX}…{k.last4}"
            if k.source == "api" else f"…{k.last4}", "status": status, "source": k.source, "team": k.team,
            "user": k.user, **_limits_json(k.limits), "models": list(k.models) if k.models is not None else None,
            "expires_at": iso(k.expires_at), "created_at": iso(k.created_at) if k.created_at else None,
            "revoked_at": iso(k.revoked_at), "log_content": k.log_content}


def principal_json(p: Principal, active_keys: int) -> dict[str, Any]:
    return {"object": p.kind, "name": p.name, **_limits_json(p.limits), "created_at": iso(p.created_at),
            "active_keys": active_keys}


# --- operations ----------------------------------------------------------------------------------

class Admin:
    """Keys, teams and users of one key ring and its database. `known_models`: the names a key's
    `models` may list (None: not checked)."""

    def __init__(self, ring: KeyRing, known_models: set[str] | None = None) -> None:
        if ring.path is None:
            raise ValueError("the key ring has no database")
        self.ring = ring
        self.path: str = ring.path
        self.known_models = known_models

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except store.StoreError as e:
            raise StoreUnavailable(f"the key database is unavailable ({e}); nothing was changed, retry in a few "
                                   "seconds") from None

    def _key(self, key_id: str) -> KeyRecord:
        k = self.ring.records.get(key_id)
        if k is None:
            raise NotFound(f"no key with id '{key_id[:100]}'", param="id")
        return k

    def _editable(self, key_id: str) -> KeyRecord:
        k = self._key(key_id)
        if k.source == "config":
            raise Conflict(f"key '{key_id}' is declared in the config file (keys: {k.name}); change it there")
        if k.revoked_at is not None:
            raise Conflict(f"key '{key_id}' was revoked at {iso(k.revoked_at)}; create a new key")
        return k

    # keys
    async def create_key(self, body: Any) -> dict[str, Any]:
        b = _object(body, KEY_FIELDS, "key")
        now = time.time()
        secret = new_secret()
        name = b.get("name")
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 200):
            raise BadRequest("'name' must be a string of 1-200 characters", param="name")
        k = KeyRecord(new_key_id(), hash_key(secret), last4(secret), name, _opt_name(b, "team"),
                      _opt_name(b, "user"), parse_limits(b), _models(b, self.known_models), _expires(b, now=now), now,
                      log_content=_log_content(b))
        version = await self._db(store.insert_key, self.path, k)
        self.ring.put_key(k, version)
        return {**key_json(k, now), "key": secret}

    def list_keys(self, *, team: str | None = None, user: str | None = None, include_revoked: bool = False
                  ) -> dict[str, Any]:
        now = time.time()
        keys = sorted(self.ring.records.values(), key=lambda k: (k.created_at, k.id))
        data = [key_json(k, now) for k in keys if (team is None or k.team == team) and (user is None or k.user == user)
                and (include_revoked or k.revoked_at is None)]
        return {"object": "list", "data": data}

    def get_key(self, key_id: str) -> dict[str, Any]:
        return key_json(self._key(key_id))

    async def update_key(self, key_id: str, body: Any) -> dict[str, Any]:
        b = _object(body, KEY_FIELDS, "key")
        k = self._editable(key_id)
        changes: dict[str, Any] = {"limits": parse_limits(b, k.limits)}
        if "name" in b:
            if b["name"] is not None and (not isinstance(b["name"], str) or not 0 < len(b["name"]) <= 200):
                raise BadRequest("'name' must be a string of 1-200 characters", param="name")
            changes["name"] = b["name"]
        for f in ("team", "user"):
            if f in b:
                changes[f] = _opt_name(b, f)
        if "models" in b:
            changes["models"] = _models(b, self.known_models)
        if "expires_at" in b:
            changes["expires_at"] = _expires(b, now=time.time())
        if "log_content" in b:
            changes["log_content"] = _log_content(b)
        new = replace(k, **changes)
        version = await self._db(store.update_key, self.path, new)
        self.ring.put_key(new, version)
        return key_json(new)

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        k = self._editable(key_id)
        new = store.revoked(k)
        version = await self._db(store.update_key, self.path, new)
        self.ring.put_key(new, version)
        return key_json(new)

    async def rotate_key(self, key_id: str) -> dict[str, Any]:
        """A new secret for the same key (id, limits, spend history); the old one stops working at once."""
        k = self._editable(key_id)
        secret = new_secret()
        new = replace(k, hash=hash_key(secret), last4=last4(secret))
        version = await self._db(store.update_key, self.path, new)
        self.ring.put_key(new, version, old_hash=k.hash)
        return {**key_json(new), "key": secret}

    # teams and users
    def _principal(self, kind: str, name: str) -> Principal:
        p = self.ring.principals(kind).get(name)
        if p is None:
            raise NotFound(f"no {kind} named '{name[:100]}'", param="name")
        return p

    def _render(self, p: Principal) -> dict[str, Any]:
        return principal_json(p, len(self.ring.active_keys_of(p.kind, p.name)))

    async def create_principal(self, kind: str, body: Any) -> dict[str, Any]:
        b = _object(body, PRINCIPAL_FIELDS, kind)
        name = _opt_name(b, "name")
        if name is None:
            raise BadRequest(f"a {kind} needs a 'name'", param="name")
        if name in self.ring.principals(kind):
            raise Conflict(f"a {kind} named '{name}' exists; PATCH /admin/{kind}s/{name} to change it")
        p = Principal(kind, name, parse_limits(b), time.time())
        try:
            version = await self._db(store.upsert_principal, self.path, p, True)
        except KeyError:
            raise Conflict(f"a {kind} named '{name}' exists") from None
        self.ring.put_principal(p, version)
        return self._render(p)

    def list_principals(self, kind: str) -> dict[str, Any]:
        return {"object": "list", "data": [self._render(p) for _, p in sorted(self.ring.principals(kind).items())]}

    def get_principal(self, kind: str, name: str) -> dict[str, Any]:
        return self._render(self._principal(kind, name))

    async def update_principal(self, kind: str, name: str, body: Any) -> dict[str, Any]:
        b = _object(body, PRINCIPAL_FIELDS, kind)
        p = self._principal(kind, name)
        if "name" in b and b["name"] != name:
            raise BadRequest(f"a {kind}'s name cannot change (keys and spend refer to it)", param="name")
        new = replace(p, limits=parse_limits(b, p.limits))
        version = await self._db(store.upsert_principal, self.path, new, False)
        self.ring.put_principal(new, version)
        return self._render(new)

    async def delete_principal(self, kind: str, name: str) -> dict[str, Any]:
        p = self._principal(kind, name)
        active = self.ring.active_keys_of(kind, name)
        if active:
            raise Conflict(f"{kind} '{name}' has {len(active)} active key(s) ({', '.join(k.id for k in active[:5])}); "
                           f"revoke them or move them to another {kind} first, so their {kind} budget is not "
                           "silently lifted")
        version = await self._db(store.delete_principal, self.path, kind, name)
        self.ring.drop_principal(kind, name, version)
        return {"object": kind, "name": p.name, "deleted": True}
