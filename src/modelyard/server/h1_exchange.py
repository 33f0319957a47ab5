"""One HTTP/1.1 request and its response on a connection (server/h1.py): the ASGI `receive` and
`send` the app gets, the response's framing on the wire, and what happens when the app fails.

Kept to what a request needs: no event object unless the app has to wait for the body, the
response head and a sized body written in one `write` (one syscall), the `date` line rendered once
a second rather than per response.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .limits import STATUS_LINES, error_response, status_line

if TYPE_CHECKING:
    from .h1 import H1Protocol

log = logging.getLogger("uvicorn.error")

HIGH_WATER = 65536  # unread request body bytes at which reading from the client pauses
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_LAST_CHUNK = b"0\r\n\r\n"

_defaults: tuple[object, bytes] = (None, b"")  # (uvicorn's default_headers list, its lines rendered)


def default_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (the `date`, renewed each second) as header lines, rendered once
    per list (uvicorn replaces the list when the date changes)."""
    global _defaults
    if _defaults[0] is not headers:
        _defaults = (headers, b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers))
    return _defaults[1]


_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def _render(headers: Any) -> tuple[bytes, bytes | None, bytes | None, bytes | None]:
    """A response's header lines, and its content-length, transfer-encoding and connection values
    (the last of each)."""
    parts: list[bytes] = []
    length = coding = connection = None
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
        if name in _FRAMING:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                coding = value
            else:
                connection = value
    return b"".join(parts), length, coding, connection


def _expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"expect" and value.lower() == b"100-continue" for name, value in headers)


class Exchange:
    """A request's state from its head to the end of its response."""

    __slots__ = (
        "buffered",
        "chunked",
        "chunks",
        "complete",
        "conn",
        "delivered",
        "disconnected",
        "expect_100",
        "head",
        "http10",
        "is_head",
        "keep_alive",
        "length",
        "more_body",
        "scope",
        "started",
        "task",
        "waiter",
    )

    def __init__(self, conn: H1Protocol, scope: dict[str, Any], keep_alive: bool, http10: bool,
                 is_head: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_100 = True  # an `Expect: 100-continue` is still to be looked for (and answered)
        self.http10 = http10
        self.is_head = is_head  # a HEAD request (or a 204/304 response): a response without a body
        self.task: asyncio.Task[None]  # (set as the task is made)
        # request body
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.more_body = True  # more of the request body is still to come from the client
        self.delivered = False  # the app has been given the last of the body
        self.waiter: asyncio.Future[None] | None = None
        # response
        self.disconnected = False
        self.started = False
        self.complete = False
        self.head = b""  # the response head, until it goes out with the body's first bytes
        self.chunked: bool  # (set by the response's start)
        self.length: int | None  # content-length bytes still to send; None: not sized

    # --- the app's task -----------------------------------------------------------------------
    async def run(self, app: Any) -> None:
        """Run the app on this request; answer 500 (or close) when it fails or leaves the response
        unfinished, so the client is never left waiting."""
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.error("exception in the ASGI application", exc_info=exc)
            self._fail()
            if not isinstance(exc, Exception):
                raise
        else:
            if not self.complete and not self.disconnected:
                log.error("the ASGI application returned without %s the response",
                          "completing" if self.started else "starting")
                self._fail()
        finally:
            self.conn.tasks.discard(self.task)

    def _fail(self) -> None:
        """500 and close if nothing was sent yet; else close (the client sees a cut response)."""
        transport = self.conn.transport
        if self.complete or self.disconnected or transport.is_closing():
            return
        if not self.started or self.head:  # (a head not written yet can still become a 500)
            self.started = self.complete = True
            self.keep_alive = False
            transport.write(error_response(500, "internal server error", default_head(
                self.conn.server_state.default_headers)))
            transport.close()
            self.conn.response_complete(self)
        else:
            transport.close()

    # --- request body ---------------------------------------------------------------------------
    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        """The next part of the request body; once it is all read, wait for the client to leave
        (or the response to end): then `http.disconnect`."""
        while not (self.disconnected or self.complete):
            chunks = self.chunks
            if chunks or (not self.more_body and not self.delivered):
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.buffered = 0
                more = self.more_body
                self.delivered = not more
                if self.conn.read_paused and not self.conn.queue:
                    self.conn.resume_reading()
                return {"type": "http.request", "body": body, "more_body": more}
            if self.expect_100:  # the body is awaited: tell a client that waits for it to send it
                self.expect_100 = False
                if (not self.started and not self.conn.transport.is_closing()
                        and _expects_continue(self.scope["headers"])):
                    self.conn.transport.write(_CONTINUE)
            if self.conn.read_paused and not self.conn.queue:  # (not paused for pipelined requests)
                self.conn.resume_reading()
            if self.waiter is None or self.waiter.done():  # (done: cancelled with a task that awaited it)
                self.waiter = self.conn.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    # --- response ---------------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        if self.conn.write_paused and not self.disconnected:
            await self.conn.drain()
        if self.disconnected:
            return  # the client is gone: what the app still sends goes nowhere
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected ASGI message 'http.response.start', got {kind!r}")
            self.expect_100 = False
            self._start(message["status"], message.get("headers", ()))
            self.started = True
        elif self.complete:
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the response completed")
        elif kind != "http.response.body":
            raise RuntimeError(f"expected ASGI message 'http.response.body', got {kind!r}")
        else:
            self._body(message.get("body", b""), message.get("more_body", False))

    def _start(self, status: int, headers: Any) -> None:
        """Render the head. A sized (or bodiless) response's head waits for the body so both go
        out in one write; a streamed one's is written now, so the client has it at once."""
        block, length, coding, connection = _render(headers)
        # Every CR and LF in the block ends a line (n of each), or a name or value holds one.
        if len(block.translate(None, b"\r\n")) != len(block) - 2 * len(headers):
            raise RuntimeError("invalid HTTP response header: a name or value holds CR or LF")
        if length is None and coding is None:  # (ASGI's header names are lowercase; an app's may not be)
            _, length, coding, connection = _render([(name.lower(), value) for name, value in headers])
        self.length = None if length is None else int(length)
        self.chunked = coding is not None and coding.lower() == b"chunked"
        close_asked = connection is not None and connection.lower().find(b"close") >= 0
        if close_asked:
            self.keep_alive = False
        framing = b""  # the header lines the protocol adds
        streamed = False
        if self.is_head or status in (204, 304):  # no body on the wire, whatever the app sends
            self.is_head = True
            self.length = 0
        elif self.length is None and not self.chunked:
            streamed = True
            if self.http10:  # HTTP/1.0 has no chunked encoding: the end of the body is the close
                self.keep_alive = False
            else:
                self.chunked = True
                framing = _CHUNKED
        elif self.chunked:
            streamed = True
            self.length = None
        if not self.keep_alive:
            if not close_asked:
                framing += _CLOSE
        elif self.http10:
            framing += _KEEP_ALIVE
        defaults = self.conn.server_state.default_headers
        head = b"".join((STATUS_LINES.get(status) or status_line(status),
                         _defaults[1] if _defaults[0] is defaults else default_head(defaults),
                         block, framing, b"\r\n"))
        if streamed:
            self.conn.transport.write(head)
        else:
            self.head = head

    def _body(self, body: bytes, more: bool) -> None:
        if self.is_head:  # (HEAD, 204, 304: no body)
            body = b""
        elif self.chunked:
            framed = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            body = framed if more else framed + _LAST_CHUNK
        elif self.length is not None:
            left = self.length - len(body)
            if left < 0 or (left and not more):  # (a head not written yet then becomes a 500)
                raise RuntimeError(f"response body {'longer' if left < 0 else 'shorter'} than its content-length")
            self.length = left
        conn = self.conn
        if self.head:
            conn.transport.write(self.head + body)
            self.head = b""
        elif body:
            conn.transport.write(body)
        if more:
            return
        self.complete = True
        if self.waiter is not None:
            self.wake()
        if not self.keep_alive:
            conn.transport.close()
        conn.response_complete(self)
