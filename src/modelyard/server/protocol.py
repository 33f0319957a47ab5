"""uvicorn's httptools protocol with the limits it lacks: a deadline for the request head, a cap
on its size and header count, and a cap on open connections — so slow, idle or flooding clients
cannot hold the gateway's file descriptors or memory.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but waits forever for the head of
a request (a fresh connection that sends nothing, headers trickled a byte at a time), lets
httptools buffer a header of any size, and accepts every connection until the process runs out of
file descriptors — and then the upstream calls and the request log fail too. Here:

- the request line and headers must arrive within `header_timeout_s` of the connection opening or
  the request's first byte: 408, connection closed;
- more than `max_header_bytes` of them, or more than `max_headers` headers: 431, closed;
- a connection beyond `max_connections` open ones: 503 at once, closed.

One timer per server sweeps the connections for late heads (as the app's request watch does),
rather than a timer armed and cancelled per request. The body's deadline is the app's (server/app.py):
the app owns the response once the head is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from ..config import ServerConfig


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_connections: int = 512


class _HeadTooLarge(Exception):
    pass


LINGER_S = 2.0  # after a 431: how long the rest of a client's head is read and dropped ...
LINGER_BYTES = 1 << 20  # ... and at most how much of it

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}
_TYPES = {408: "request_timeout", 431: "request_header_fields_too_large", 503: "service_unavailable"}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Built per server by `protocol_class(limits)`, which sets `limits` and `sweeper`."""

    limits: ClassVar[Limits] = Limits()
    sweeper: ClassVar[_Sweeper]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_since: float | None = None  # loop time the head being read began; None: not reading one
        self._head_bytes = 0  # bytes of the head parsed so far (url, names, values)
        self._head_raw = 0  # bytes received while the head was incomplete (a header still being buffered)
        self._head_count = 0
        self._refusal: int | None = None
        self._lingering = -1  # bytes dropped after a 431 (-1: not lingering)

    # --- connections --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refuse(503, "the gateway has too many open connections; retry shortly")
            return
        self.head_since = self.loop.time()  # a fresh connection owes a request head
        self.sweeper.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sweeper.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:  # refused: what the client is still sending is read and dropped
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.close()
            return
        super().data_received(data)
        if self.head_since is not None and self._refusal is None:
            self._head_raw += len(data)
            if self._head_raw > self.limits.max_header_bytes and not self.transport.is_closing():
                self._refusal = 431
                self.refuse(431, f"the request head exceeds {self.limits.max_header_bytes} bytes")

    # --- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_since is None:
            self.head_since = self.loop.time()
        self._head_bytes = self._head_count = 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        self._head_count += 1
        if self._head_count > self.limits.max_headers or self._head_bytes > self.limits.max_header_bytes:
            self._refusal = 431
            raise _HeadTooLarge  # stops the parser; uvicorn then calls send_400_response
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.head_since = None
        self._head_raw = 0
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal == 431:
            lim = self.limits
            self.refuse(431, f"the request head exceeds {lim.max_header_bytes} bytes or {lim.max_headers} headers")
        else:
            super().send_400_response(msg)

    # --- refusals -----------------------------------------------------------------------------
    def head_timed_out(self) -> None:
        """Called by the sweeper: the head is late. Answer 408 unless a response is being written."""
        if self.cycle is not None and not self.cycle.response_complete:
            return  # (a pipelined head behind a running response: checked again at the next sweep)
        self.refuse(408, f"the request head did not arrive within {self.limits.header_timeout_s:g} s")

    def refuse(self, status: int, message: str) -> None:
        """Write a complete JSON error response and close the connection."""
        self.head_since = None
        self.sweeper.discard(self)
        if self.transport.is_closing():
            return
        body = orjson.dumps({"error": {"message": message, "type": _TYPES[status], "param": None,
                                       "code": _TYPES[status]}})
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]), b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
        if status == 503:
            head.append(b"retry-after: 1\r\n")
        self.transport.write(b"".join(head) + b"\r\n" + body)
        if status == 431 and self.transport.can_write_eof():
            # The client may still be sending the rest of its head: closing now with unread input
            # resets the connection, and a reset can destroy the response before the client reads
            # it. Half-close instead, drop what still arrives, and close after LINGER_S.
            self.transport.write_eof()
            self._lingering = 0
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


class _Sweeper:
    """One server's connections that owe a request head, checked every `tick` seconds."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick = max(0.05, min(1.0, timeout_s / 4))
        self.conns: set[GuardedHttpToolsProtocol] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, conn: GuardedHttpToolsProtocol) -> None:
        self.conns.add(conn)
        if self._handle is None:
            self._handle = conn.loop.call_later(self.tick, self._sweep, conn.loop)

    def discard(self, conn: GuardedHttpToolsProtocol) -> None:
        self.conns.discard(conn)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        if not self.conns:
            return
        late = loop.time() - self.timeout_s
        for conn in [c for c in self.conns if c.head_since is not None and c.head_since <= late]:
            conn.head_timed_out()
        self._handle = loop.call_later(self.tick, self._sweep, loop)


GuardedHttpToolsProtocol.sweeper = _Sweeper(Limits().header_timeout_s)


def configure(limits: Limits) -> None:
    """Give GuardedHttpToolsProtocol itself these limits: for worker processes, where uvicorn
    imports the class by name (a class made by `protocol_class` cannot be sent to them)."""
    GuardedHttpToolsProtocol.limits = limits
    GuardedHttpToolsProtocol.sweeper = _Sweeper(limits.header_timeout_s)


def protocol_class(limits: Limits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for one server (uvicorn's `http=`), with its limits and its sweeper."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"limits": limits, "sweeper": _Sweeper(limits.header_timeout_s)})


def max_connections_default() -> int:
    """Half the process's open-file limit: the other half stays for upstream connections, the
    request log and the rest, so a flood of clients cannot starve them."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 512
    return 512 if soft == resource.RLIM_INFINITY or soft <= 0 else max(16, soft // 2)


def limits_of(server: ServerConfig) -> Limits:
    return Limits(header_timeout_s=server.header_timeout_s, max_header_bytes=server.max_header_bytes,
                  max_headers=server.max_headers, max_connections=server.max_connections or max_connections_default())


def uvicorn_options(server: ServerConfig, *, workers: bool = False) -> dict[str, Any]:
    """The uvicorn settings that serve `server`'s limits (`modelyard serve` and tests run these).
    `workers`: the protocol by name; each worker then calls `configure(limits_of(server))`."""
    http: Any = f"{__name__}:GuardedHttpToolsProtocol" if workers else protocol_class(limits_of(server))
    # Nothing in the app reads the client address from proxies' headers, so uvicorn's
    # X-Forwarded-For rewriting (a middleware call on every request) is off.
    return {"http": http, "timeout_keep_alive": server.keep_alive_timeout_s,
            "lifespan": "on", "access_log": False, "log_level": "warning", "server_header": False,
            "proxy_headers": False}
