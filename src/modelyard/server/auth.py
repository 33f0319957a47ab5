"""Who sent a request: the master key, a virtual key, or nobody.

Credentials come as `Authorization: Bearer <key>` or `x-api-key: <key>`, either one: the scheme is
matched case-insensitively (RFC 9110), and a wrong `Authorization` does not hide a right `x-api-key`
(SDKs and proxies add headers of their own). The master key gives the `MASTER` caller; a virtual key
its own `Caller` from the key ring (accounting/keys.py: one dict lookup for a token seen before). Revoked
and expired keys get a 401 that says so, naming the key's id, never the key.

Authentication is on when a master key is set or any virtual key exists; with neither, every
request is the master (a loopback-only server: `modelyard serve` refuses other addresses).
Failed attempts are counted and logged at most once per LOG_EVERY_S, with the client address and
what was wrong, never the key material sent.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..accounting.keys import KeyRing, declared_keys
from ..errors import Auth, ModelyardError, PermissionDenied
from ..store.location import locate
from ..store.rows import request_row
from ..types import MASTER, Caller, ChatRequest
from .http import Receive, Scope, raw_header

if TYPE_CHECKING:
    from ..gateway import Gateway
    from .app import App

log = logging.getLogger("modelyard.server.auth")

LOG_EVERY_S = 10.0
_HOW = "send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Authenticator:
    """Checks requests against the master key (if set) and the key ring; `failures` counts refusals."""

    __slots__ = ("_last_log", "_unlogged", "failures", "master", "ring")

    def __init__(self, master_key: str | None, ring: KeyRing | None = None) -> None:
        self.master = master_key.encode() if master_key else None
        self.ring = ring if ring is not None else KeyRing(None)
        self.failures = 0
        self._unlogged = 0  # failures since the last log line
        self._last_log = float("-inf")

    @classmethod
    def for_gateway(cls, gateway: Gateway, master_key: str | None) -> Authenticator:
        """The master key plus the keys in the request log's database and the config's `keys:`."""
        cfg = gateway.config
        declared = [k for k, _ in declared_keys(cfg, gateway.source)] if cfg.keys else []
        return cls(master_key, KeyRing(locate(cfg), declared))

    async def start(self) -> None:
        await self.ring.start()

    async def close(self) -> None:
        await self.ring.close()

    def check(self, scope: Scope) -> Caller:
        """The request's Caller; raise Auth (401) unless it carries a valid key (when one is needed)."""
        ring = self.ring
        if self.master is None and not ring.by_hash:
            return MASTER
        bearer = raw_header(scope, b"authorization")  # (bytes: compared as sent, nothing decoded)
        if bearer is not None:
            scheme, _, value = bearer.strip().partition(b" ")
            bearer = value.strip() if scheme.lower() == b"bearer" else None
        refusal = None
        token, api_key, second = bearer, None, False
        while True:  # the bearer token, then x-api-key (read only when the bearer did not do)
            if token:
                if self.master is not None and hmac.compare_digest(token, self.master):
                    return MASTER
                entry = ring.lookup(token) if ring.by_hash else None
                if entry is not None:
                    if entry.revoked_at is not None:
                        refusal = refusal or (f"this API key ({entry.record.id}) was revoked at "
                                              f"{_when(entry.revoked_at)}", "revoked key")
                    elif entry.expires_at is not None and entry.expires_at <= time.time():
                        refusal = refusal or (f"this API key ({entry.record.id}) expired at "
                                              f"{_when(entry.expires_at)}", "expired key")
                    else:
                        return entry.caller
            if second:
                break
            second = True
            api_key = raw_header(scope, b"x-api-key")
            token = api_key.strip() if api_key else None
        sent = bool(bearer or api_key)
        if refusal is not None:
            self._failed(scope, refusal[1])
            raise Auth(refusal[0] + "; ask an administrator for a new key", code="invalid_api_key")
        self._failed(scope, "wrong key" if sent else "no key")
        raise Auth(f"missing or invalid API key: {_HOW}" if sent else f"missing API key: {_HOW}")

    def _failed(self, scope: Scope, what: str) -> None:
        self.failures += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY_S:
            return
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "an unknown address"
        log.warning("refused %d request(s) without a valid API key since the last report (%d since start); "
                    "latest: %s from %s, %s %s", self._unlogged, self.failures, what, where,
                    scope.get("method"), scope.get("path"))
        self._last_log = now
        self._unlogged = 0


_MODE_MODELS = ("models", "judge", "aggregator")  # what a multi-model request may name besides `model`


def check_models(caller: Caller, req: ChatRequest) -> None:
    """PermissionDenied (403) naming the model if the caller's key may not use a model the request
    names (`model`, and a multi-model request's `models`, `judge`, `aggregator`)."""
    allowed = caller.models
    if allowed is None:
        return
    names = [req.model]
    meta = req.metadata
    if meta:
        for field in _MODE_MODELS:
            v = meta.get(field)
            if isinstance(v, str):
                names.extend(s.strip() for s in v.split(","))
            elif isinstance(v, list):
                names.extend(s for s in v if isinstance(s, str))
    for name in names:
        if name not in allowed:
            raise PermissionDenied(f"this API key may not use model '{name}'; it may use: "
                                   f"{', '.join(sorted(allowed)) or 'none'}", param="model", code="model_not_allowed")


async def admit(app: App, scope: Scope, receive: Receive, rid: str, api: str,
                parse: Callable[[Any], ChatRequest]) -> ChatRequest:
    """Authenticate, read and parse the body, check the key's models. A refusal (401, 400, 403, 408,
    413) is written to the request log as a row of its own (status and error, no body content)
    before it is raised."""
    caller = MASTER
    body: Any = None
    try:
        caller = app.check_auth(scope)
        body = await app.read_json(scope, receive)
        req = parse(body)
        req.caller = caller
        check_models(caller, req)
        return req
    except ModelyardError as e:
        model = body.get("model") if isinstance(body, dict) else None
        stream = body.get("stream") is True if isinstance(body, dict) else False
        app.gateway.emit(request_row(rid, model if isinstance(model, str) else "", e.status, error_type=e.type,
                                     error=e.message, stream=stream, api=api, caller=caller))
        raise
