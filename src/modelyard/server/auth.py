"""The master key check: `Authorization: Bearer <key>` or `x-api-key: <key>`, either one.

The scheme is matched case-insensitively (RFC 9110), and a wrong `Authorization` does not hide a
right `x-api-key` (SDKs and proxies add headers of their own). Failed attempts are counted and
logged at most once per LOG_EVERY_S, with the client address and what was wrong, never the key
material sent.
"""

from __future__ import annotations

import hmac
import logging
import time

from ..errors import Auth
from .http import Scope, raw_header

log = logging.getLogger("modelyard.server.auth")

LOG_EVERY_S = 10.0
_HOW = "send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


class MasterKey:
    """Checks requests against one key; `failures` counts the refused ones since start."""

    __slots__ = ("_key", "_last_log", "_unlogged", "failures")

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self.failures = 0
        self._unlogged = 0  # failures since the last log line
        self._last_log = float("-inf")

    def check(self, scope: Scope) -> None:
        """Return if a header carries the key; raise Auth (401) otherwise."""
        bearer = raw_header(scope, b"authorization")  # (bytes: compared as sent, nothing decoded)
        if bearer is not None:
            scheme, _, token = bearer.strip().partition(b" ")
            bearer = token.strip() if scheme.lower() == b"bearer" else None
            if bearer and hmac.compare_digest(bearer, self._key):
                return
        api_key = raw_header(scope, b"x-api-key")
        if api_key and hmac.compare_digest(api_key.strip(), self._key):
            return
        sent = bool(bearer or api_key)
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
