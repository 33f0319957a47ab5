"""The connection limits the HTTP/1.1 protocol (server/h1.py) enforces, the one timer per server
that enforces the time-based ones, and the JSON error responses the protocol writes itself.

Slow, idle or flooding clients must not hold the gateway's file descriptors or memory:

- the request line and headers must arrive within `header_timeout_s` of the connection opening or
  the request's first byte: 408, connection closed;
- more than `max_header_bytes` of them, or more than `max_headers` headers: 431, closed;
- a connection beyond `max_connections` open ones: 503 at once, closed;
- a keep-alive connection idle for uvicorn's `timeout_keep_alive`: closed.

One timer per server sweeps the connections for late heads and idle keep-alives (as the app's
request watch does for bodies), rather than a timer armed and cancelled per request. The body's
deadline is the app's (server/app.py): the app owns the request once its head is read.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Protocol

import orjson


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_connections: int = 512


_TYPES = {400: "invalid_request_error", 408: "request_timeout", 431: "request_header_fields_too_large",
          500: "internal_error", 503: "service_unavailable"}


def status_line(status: int) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


STATUS_LINES = {status: status_line(status) for status in range(100, 600)}


def error_response(status: int, message: str, default_head: bytes = b"") -> bytes:
    """A complete JSON error response that closes the connection (the errors the protocol answers
    itself, in the format of the app's errors). `default_head`: the server's default header lines."""
    kind = _TYPES.get(status, "error")
    body = orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})
    retry = b"retry-after: 1\r\n" if status == 503 else b""
    return (STATUS_LINES[status] + default_head + b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n%s\r\n%s" % (len(body), retry, body))


class Swept(Protocol):
    """What the sweeper reads of a connection (H1Protocol)."""

    head_since: float | None  # loop time the head being read began; None: not reading one
    idle_since: float | None  # loop time it went idle between requests; None: not idle

    def head_timed_out(self) -> None: ...

    def idle_timed_out(self) -> None: ...


class Sweeper:
    """One server's open connections, checked every `tick` seconds for a late head (the head
    deadline) or a keep-alive that has been idle too long."""

    def __init__(self, head_timeout_s: float, keep_alive_s: float = 5.0) -> None:
        self.head_timeout_s = head_timeout_s
        self.keep_alive_s = -1.0
        self.tick = 1.0
        self.conns: set[Swept] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.set_keep_alive(keep_alive_s)

    def set_keep_alive(self, keep_alive_s: float) -> None:
        """The idle keep-alive timeout (uvicorn's config carries it, so the protocol sets it)."""
        self.keep_alive_s = keep_alive_s
        self.tick = max(0.05, min(1.0, self.head_timeout_s / 4, keep_alive_s / 4))

    def add(self, conn: Swept, loop: asyncio.AbstractEventLoop) -> None:
        self.conns.add(conn)
        if self._handle is None:
            self._handle = loop.call_later(self.tick, self._sweep, loop)

    def discard(self, conn: Swept) -> None:
        self.conns.discard(conn)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        if not self.conns:
            return
        now = loop.time()
        late_head, late_idle = now - self.head_timeout_s, now - self.keep_alive_s
        heads = [c for c in self.conns if c.head_since is not None and c.head_since <= late_head]
        idles = [c for c in self.conns if c.head_since is None and c.idle_since is not None
                 and c.idle_since <= late_idle]
        for conn in heads:
            conn.head_timed_out()
        for conn in idles:
            conn.idle_timed_out()
        self._handle = loop.call_later(self.tick, self._sweep, loop)
