"""An HTTP/1.1 client that runs on the event loop, for upstreams reached over plain `http://`
(local model servers, sidecars, an egress proxy on the host).

Why: the pooled wreq client (providers/http.py) does its I/O on its own threads, so every call
hands the request from the loop to a thread and the answer back: wakeups, context switches and
the GIL, about 10 µs of kernel time per request that no count of instructions shows. Without TLS a
call is one write and one parse, which the loop can do itself at less cost than the hand-over
(docs/BENCHMARKS.md). `https://` upstreams stay on wreq, whose TLS is Rust's.

What it speaks: POST with a sized body; answers sized, chunked or ending with the connection;
interim 1xx answers skipped; keep-alive with a pool of idle connections per origin (newest first,
none kept longer than IDLE_S); a reused connection that the server had closed meanwhile is retried
once on a new one, as long as not a byte of the answer came back. A call has a total deadline
(connect, send, the whole answer). Cancelling the awaiting task, or closing a stream before its
end, drops the connection: that is how an upstream learns to stop generating.

Failures are raised as `ConnectFailed` (no connection), `TimeoutError`, `Closed` (closed
mid-answer) and `BadResponse` (not HTTP); providers/transport.py names the deployment.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httptools

IDLE_S = 30.0  # an idle connection older than this is closed, not reused (servers time out idle ones)
READ_HIGH_WATER = 1 << 20  # a stream's unread bytes above which reading from the upstream pauses


class ConnectFailed(OSError):
    """No connection to the upstream (refused, unreachable, name not resolved, connect timeout)."""


class Closed(ConnectionResetError):
    """The upstream closed the connection before the end of its answer."""


class BadResponse(Exception):
    """The upstream answered with something that is not HTTP/1.1."""


class Headers:
    """An answer's headers as received; `get` looks a name up case-insensitively (only error paths
    and a stream's content-type check read them, so nothing is decoded or indexed up front)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, name: str, default: str | None = None) -> str | None:
        want = name.lower().encode("latin-1")
        for k, v in self._raw:
            if k.lower() == want:
                return v.decode("latin-1")
        return default


class Conn(asyncio.Protocol):
    """One connection to an origin and the state of the answer it is reading."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()  # (protocols are made on the loop that connects)
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.busy = False  # a call is using it
        self.reused = False
        self.idle_since = 0.0
        self.paused = False
        self.streaming = False  # the call reads its answer as a stream (reading may pause)
        self.timer: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Future[None] | None = None
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []
        self.unread = 0
        self.head_done = self.done = self.got = False
        self.keep = False
        self.error: BaseException | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # an idle connection has nothing to say: not one to reuse
            self.closed = True
            self.transport.abort()
            return
        self.got = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("switched protocols"))
        except httptools.HttpParserError as e:
            self._fail(BadResponse(f"not an HTTP/1.1 answer ({e})"))
        if self.streaming and not self.paused and self.unread > READ_HIGH_WATER and not self.done:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.busy:
            self.pool.forget(self)
            return
        if self.done or self.error is not None:
            return
        if self.head_done and not self._sized():  # an answer that ends with the connection
            self.done = True
        else:
            why = f": {os.strerror(exc.errno)}" if isinstance(exc, OSError) and exc.errno else ""
            self.error = Closed(f"closed the connection before the end of its answer{why}")
        self._wake()

    # --- httptools callbacks ------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status >= 200:
            self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)
        self.unread += len(body)

    def on_message_complete(self) -> None:
        if self.status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self.raw_headers = []
            return
        self.done = True
        self.keep = self.parser.should_keep_alive()

    # --- the call -----------------------------------------------------------------------------
    def send(self, data: bytes, deadline: float, stream: bool) -> None:
        self._begin()
        self.busy, self.streaming = True, stream
        self.transport.write(data)
        self.timer = self.loop.call_at(deadline, self._timed_out)

    async def wait(self) -> None:
        """Until something changed (bytes arrived, the end, an error); cancelling drops the connection."""
        self.waiter = w = self.loop.create_future()
        try:
            await w
        except BaseException:
            self.abort()
            raise
        finally:
            self.waiter = None

    def take_parts(self) -> bytes:
        parts, self.parts, self.unread = self.parts, [], 0
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """The answer was read to its end: back to the pool if the server keeps the connection."""
        self._stop_timer()
        self.busy = False
        if self.keep and not self.closed and not self.paused:
            self.pool.put(self)
        else:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection (a call given up, a stream closed before its end)."""
        self._stop_timer()
        self.closed = True
        self.busy = False
        self.transport.abort()

    def _sized(self) -> bool:
        return any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.raw_headers)

    def _fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        self.closed = True
        self.transport.abort()

    def _timed_out(self) -> None:
        self.timer = None
        self._fail(TimeoutError("the call's total timeout passed"))
        self._wake()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)


class Stream:
    """A streamed answer: status and headers, then `read()` hands over what arrived (b"" at its end)."""

    __slots__ = ("_conn", "eof", "headers", "status")

    def __init__(self, conn: Conn) -> None:
        self._conn: Conn | None = conn
        self.status = conn.status
        self.headers = Headers(conn.raw_headers)
        self.eof = False

    async def read(self) -> bytes:
        c = self._conn
        if c is None:
            return b""
        while not c.parts:
            if c.error is not None:
                self._conn = None
                c.abort()
                raise c.error
            if c.done:
                self.eof, self._conn = True, None
                c.release()
                return b""
            await c.wait()
        data = c.take_parts()
        if c.done and c.error is None:  # the end came with it: the connection is free already
            self.eof, self._conn = True, None
            c.release()
        return data

    def close(self) -> None:
        """Before the end: drop the connection (the upstream stops); after it: nothing to do."""
        c, self._conn = self._conn, None
        if c is not None:
            c.abort()


class Pool:
    """Keep-alive connections to one origin (host, port) with one connect timeout."""

    def __init__(self, host: str, port: int, connect_s: float) -> None:
        self.host, self.port, self.connect_s = host, port, connect_s
        self.idle: list[Conn] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def post(self, data: bytes, timeout_s: float) -> tuple[int, Headers, bytes]:
        """Send `data` (a whole request), read the whole answer: (status, headers, body)."""
        c = await self._call(data, timeout_s, stream=False)
        body = c.take_parts()
        status, headers = c.status, Headers(c.raw_headers)
        c.release()
        return status, headers, body

    async def open(self, data: bytes, timeout_s: float) -> Stream:
        """Send `data`, return once the answer's head is in; the body follows through `Stream.read`."""
        return Stream(await self._call(data, timeout_s, stream=True))

    async def _call(self, data: bytes, timeout_s: float, *, stream: bool) -> Conn:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # first use, or a new loop (a library user's second asyncio.run)
            self.loop, self.idle = loop, []
        deadline = loop.time() + timeout_s
        c = self._take(loop.time())
        if c is None:
            c = await self._connect(deadline)
        try:
            await self._exchange(c, data, deadline, stream)
        except Closed:
            if not (c.reused and not c.got):
                raise
            # The server closed the idle connection as we sent on it: once more, on a new one.
            c = await self._connect(deadline)
            await self._exchange(c, data, deadline, stream)
        return c

    @staticmethod
    async def _exchange(c: Conn, data: bytes, deadline: float, stream: bool) -> None:
        c.send(data, deadline, stream)
        while not (c.done or (stream and c.head_done)):
            if c.error is not None:
                break
            await c.wait()
        if c.error is not None:
            c.abort()
            raise c.error

    def _take(self, now: float) -> Conn | None:
        idle = self.idle
        while idle:
            c = idle.pop()
            if not c.closed and now - c.idle_since < IDLE_S:
                c.reused = True
                return c
            c.closed = True
            c.transport.close()
        return None

    async def _connect(self, deadline: float) -> Conn:
        loop = self.loop
        assert loop is not None
        left = deadline - loop.time()
        try:
            async with asyncio.timeout(max(0.0, min(self.connect_s, left))):
                _, conn = await loop.create_connection(lambda: Conn(self), self.host, self.port)
        except TimeoutError:
            if left <= self.connect_s:  # the call's own deadline, not the connect timeout, ran out
                raise TimeoutError("the call's total timeout passed while connecting") from None
            raise ConnectFailed("connect timed out") from None
        except OSError as e:
            raise ConnectFailed(os.strerror(e.errno) if e.errno else str(e)) from e
        return conn

    def put(self, c: Conn) -> None:
        c.idle_since = self.loop.time() if self.loop is not None else 0.0
        self.idle.append(c)

    def forget(self, c: Conn) -> None:
        if c in self.idle:  # (closed by the server while idle: rare, and the list is short)
            self.idle.remove(c)

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for c in idle:
            c.closed = True
            c.transport.close()
