"""The gateway's HTTP/1.1 server protocol, run by uvicorn (its `http=` option): uvicorn keeps the
process (config, sockets, workers, lifespan, signals, graceful shutdown); this class parses
requests with httptools, hands each to the ASGI app as a task, and writes its response.

It does per request only what a request needs, and enforces the connection limits of
server/limits.py (head deadline 408, head size 431, connection cap 503, idle keep-alive close)
with one timer per server rather than one per request.

HTTP it speaks: keep-alive (HTTP/1.1's default; HTTP/1.0 when the client asks for it),
`Connection: close`, pipelined requests (answered in order, one at a time), request bodies
sized or chunked (reading pauses while the app leaves more than 64 KiB unread), `Expect:
100-continue`, responses sized or streamed (chunked; on HTTP/1.0 closed at the end), HEAD and
204/304 without a body. An Upgrade request is served as plain HTTP/1.1 (RFC 9110 §7.8 lets a
server ignore it), except a WebSocket one, which is refused (400): the gateway has no WebSockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, ClassVar
from urllib.parse import unquote

import httptools
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from .h1_exchange import HIGH_WATER, Exchange, default_head
from .limits import Limits, Sweeper, error_response

log = logging.getLogger("uvicorn.error")

LINGER_S = 2.0  # after a 431: how long the rest of a client's head is read and dropped ...
LINGER_BYTES = 1 << 20  # ... and at most how much of it

_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}

# Request targets already split into (path, raw_path, query_string): a gateway sees few distinct
# ones, so each is split and unquoted once. Bounded in entries and in the size of a target kept.
_TARGETS: dict[bytes, tuple[str, bytes, bytes]] = {}
_TARGETS_MAX = 1024
_TARGET_MAX_BYTES = 256


def _split_target(url: bytes) -> tuple[str, bytes, bytes]:
    """A request target as ASGI's (path, raw_path, query_string)."""
    if url[:1] == b"/" and url.find(b"#") < 0:  # origin-form, the usual one
        raw_path, _, query = url.partition(b"?")
    else:  # absolute-form (or a fragment): httptools splits it
        parsed = httptools.parse_url(url)
        raw_path, query = parsed.path or b"/", parsed.query or b""
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    target = (path, raw_path, query)
    if len(_TARGETS) < _TARGETS_MAX and len(url) <= _TARGET_MAX_BYTES:
        _TARGETS[url] = target
    return target


class _HeadTooLarge(Exception):
    pass


class H1Protocol(asyncio.Protocol):
    """One client connection. Built per server by server/protocol.py's `protocol_class(limits)`,
    which sets `limits` and `sweeper` (worker processes: `configure(limits)`)."""

    limits: ClassVar[Limits] = Limits()
    sweeper: ClassVar[Sweeper] = Sweeper(Limits().header_timeout_s)

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.app_state = app_state
        self.root_path: str = config.root_path
        self.limit_concurrency: int | None = config.limit_concurrency
        self.asgi = {"version": config.asgi_version, "spec_version": "2.3"}
        self.scope: dict[str, Any] = {}  # the fields every request's scope shares (connection_made)
        if self.sweeper.keep_alive_s != config.timeout_keep_alive:
            self.sweeper.set_keep_alive(config.timeout_keep_alive)
        self.parser = httptools.HttpRequestParser(self)
        # A request with `Connection: close` followed by more bytes is answered (the rest is ignored).
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        # the connection
        self.reading: Exchange | None = None  # the request whose head/body the parser is on
        self.active: Exchange | None = None  # the request whose response is being made
        self.queue: deque[tuple[Exchange, Any]] = deque()  # pipelined requests waiting their turn
        self.read_paused = False
        self.write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self.head_since: float | None = None  # loop time the head being read began; None: not reading one
        self.idle_since: float | None = None  # loop time it went idle between requests; None: not idle
        self.refusal: tuple[int, str] | None = None  # an error to answer once the running response ends
        self._lingering = -1  # bytes dropped after a 431 (-1: not lingering)
        self._too_large = False  # the parser was stopped by the head limits (431, not 400)
        self._read_len = 0  # the size of the read being parsed
        # the head being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_raw = 0  # bytes received while a head was incomplete

    # --- connection -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.connections.add(self)
        self.transport = transport
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        self.scope = {"type": "http", "asgi": self.asgi, "http_version": "1.1", "server": self.server,
                      "client": self.client, "scheme": self.scheme, "method": "GET", "root_path": self.root_path,
                      "path": "/", "raw_path": b"/", "query_string": b"", "headers": [], "state": None}
        if len(self.connections) > self.limits.max_connections:
            self.refuse(503, "the gateway has too many open connections; retry shortly")
            return
        self.head_since = self.loop.time()  # a fresh connection owes a request head
        self.sweeper.add(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.sweeper.discard(self)
        for ex in (self.active, self.reading):
            if ex is not None and not ex.complete:
                ex.disconnected = True
                ex.wake()
        self.queue.clear()
        self.write_paused = False
        self._wake_drain()

    def eof_received(self) -> None:
        """The client closed its side: treated as gone (the transport closes)."""

    def shutdown(self) -> None:
        """uvicorn is stopping: close now if idle, else once the running response is complete."""
        if self.active is None:
            self.transport.close()
        else:
            self.active.keep_alive = False
            self.queue.clear()

    # --- reading --------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:  # refused: what the client is still sending is read and dropped
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.close()
            return
        self._read_len = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:  # served as HTTP/1.1: parse on after it
            rest = data[upgrade.args[0]:]
            if rest and not self.transport.is_closing():
                self.data_received(rest)
            return
        except httptools.HttpParserError as e:
            if self._too_large:
                lim = self.limits
                self.refuse(431, f"the request head exceeds {lim.max_header_bytes} bytes or {lim.max_headers} headers")
            else:
                log.warning("Invalid HTTP request received: %s", e)
                self.refuse(400, f"invalid HTTP request: {e}")
            return
        if self.head_since is not None and self.refusal is None:  # a head still incomplete
            self.head_raw += len(data)
            if self.head_raw > self.limits.max_header_bytes and not self.transport.is_closing():
                self.refuse(431, f"the request head exceeds {self.limits.max_header_bytes} bytes")

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.refusal is None:
            self.read_paused = False
            self.transport.resume_reading()

    # --- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        # (url, headers and head_raw were reset when the previous head was complete)
        self.idle_since = None
        if self.head_since is None:
            self.head_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # (llhttp keeps a value's trailing whitespace; of ASCII whitespace, it lets only SP and HTAB in)
        self.headers.append((name.lower(), value.rstrip()))

    def _head_too_large(self) -> bool:
        """Whether the head just parsed is over the limits. Its size is only added up when it
        can be over (it came in reads that add up to more than the limit): a head still incomplete
        after a read is bounded by data_received as it arrives."""
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            return True
        if self.head_raw + self._read_len <= limits.max_header_bytes:
            return False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        return size > limits.max_header_bytes

    def on_headers_complete(self) -> None:
        self.head_since = None
        headers, url = self.headers, self.url
        limits = self.limits
        if ((len(headers) > limits.max_headers or self.head_raw + self._read_len > limits.max_header_bytes)
                and self._head_too_large()):
            self._too_large = True
            raise _HeadTooLarge  # stops the parser: data_received answers 431
        self.headers, self.url, self.head_raw = [], b"", 0  # (for the next head)
        parser = self.parser
        if parser.should_upgrade() and any(n == b"upgrade" and b"websocket" in v.lower() for n, v in headers):
            self.refuse(400, "this server does not accept WebSocket connections; use HTTP requests")
            return
        raw_method = parser.get_method()
        path, raw_path, query = _TARGETS.get(url) or _split_target(url)
        scope = self.scope.copy()
        # llhttp keeps alive an HTTP/1.0 (or 0.9, 2.0) request only when a `Connection` header asks
        # for it: a kept-alive request without one is HTTP/1.1, known without asking the parser
        # (which formats a string for it).
        keep_alive = parser.should_keep_alive()
        version = "1.1"
        if keep_alive:
            for name, _ in headers:
                if name == b"connection":
                    version = parser.get_http_version()
                    break
        else:
            version = parser.get_http_version()
        scope["http_version"] = version
        if self.root_path:
            scope["path"], scope["raw_path"] = self.root_path + path, self.root_path.encode() + raw_path
        else:
            scope["path"], scope["raw_path"] = path, raw_path
        scope["method"] = method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        scope["query_string"] = query
        scope["headers"] = headers
        scope["state"] = self.app_state.copy()
        ex = self.reading = Exchange(self, scope, keep_alive, version == "1.0", method == "HEAD")
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            log.warning("exceeded the concurrency limit (%d)", limit)
            app = _service_unavailable
        if self.active is None:
            self.active = ex
            ex.task = task = self.loop.create_task(ex.run(app))
            self.tasks.add(task)  # (the task takes itself out when it ends)
        else:  # pipelined behind a running response: waits its turn, and reading waits with it
            self.queue.append((ex, app))
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        ex = self.reading
        if ex is not None and not ex.complete:  # (answered before reading it all: the rest is dropped)
            ex.chunks.append(body)
            ex.buffered += len(body)
            if ex.buffered > HIGH_WATER:
                self.pause_reading()
            if ex.waiter is not None:
                ex.wake()

    def on_message_complete(self) -> None:
        ex = self.reading
        if ex is not None:
            self.reading = None
            ex.more_body = False
            if ex.waiter is not None:
                ex.wake()

    # --- requests -----------------------------------------------------------------------------
    def _run(self, ex: Exchange, app: Any) -> None:
        self.active = ex
        ex.task = task = self.loop.create_task(ex.run(app))
        self.tasks.add(task)  # (the task takes itself out when it ends)

    def response_complete(self, ex: Exchange) -> None:
        """`ex`'s response is written: start the next pipelined request, or wait idle."""
        self.server_state.total_requests += 1
        if self.active is ex:
            self.active = None
        if self.transport.is_closing():
            return
        if self.refusal is not None:
            self.refuse(*self.refusal)
            return
        if self.read_paused:
            self.resume_reading()
        if self.queue:
            self._run(*self.queue.popleft())
        elif self.head_since is None and (self.reading is None or self.reading.complete):
            self.idle_since = self.loop.time()

    # --- writing --------------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its low-water mark (or the client left)."""
        if self._drained is None or self._drained.done():
            self._drained = self.loop.create_future()
        await self._drained

    def _wake_drain(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # --- limits and refusals ----------------------------------------------------------------------
    def head_timed_out(self) -> None:
        """Called by the sweeper: the head is late. 408, unless a response is being written
        (a pipelined head behind it: checked again at the next sweep)."""
        if self.active is None:
            self.refuse(408, f"the request head did not arrive within {self.limits.header_timeout_s:g} s")

    def idle_timed_out(self) -> None:
        """Called by the sweeper: idle past the keep-alive timeout."""
        self.transport.close()

    def refuse(self, status: int, message: str) -> None:
        """Answer a JSON error and close the connection; after the running response, if there is one."""
        self.head_since = None
        self.reading = None
        if self.active is not None and not self.active.complete:
            self.refusal = (status, message)
            self.active.keep_alive = False
            self.queue.clear()
            self.pause_reading()
            return
        self.sweeper.discard(self)
        if self.transport.is_closing():
            return
        self.transport.write(error_response(status, message, default_head(self.server_state.default_headers)))
        if status == 431 and self.transport.can_write_eof():
            # The client may still be sending the rest of its head: closing now with unread input
            # resets the connection, and a reset can destroy the response before the client reads
            # it. Half-close instead, drop what still arrives, and close after LINGER_S.
            self.transport.write_eof()
            self._lingering = 0
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


async def _service_unavailable(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The app in the app's place past uvicorn's `limit_concurrency`."""
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"19"),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": b"Service Unavailable"})
