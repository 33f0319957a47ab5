"""The gateway's HTTP/1.1 protocol (server/h1.py) on a real uvicorn server on loopback, driven by raw
sockets (to see the bytes on the wire) and httpx: keep-alive, pipelining, request bodies, flow
control, streaming, errors, disconnects and shutdown."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import ServerThread
from modelyard.config import ServerConfig


class App:
    """A small ASGI app whose routes exercise the protocol; it records what it saw."""

    def __init__(self) -> None:
        self.seen_disconnect = threading.Event()
        self.release = asyncio.Event()
        self.paused_seen = False
        self.server: Any = None
        self.started = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/boom":
            raise ValueError("a bug in the app")
        if path == "/nothing":
            return
        if path == "/stream-forever":
            await self._stream_forever(receive, send)
            return
        if path == "/slow-reader":
            await asyncio.sleep(0.3)  # the client's body piles up meanwhile
            conn = next(iter(self.server.server_state.connections))
            self.paused_seen = conn.read_paused
        if path == "/slow":
            self.started.set()
            await asyncio.sleep(0.5)
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if path == "/cancelled-wait":  # a task waiting in receive() is cancelled: receive() still works
            waiting = asyncio.ensure_future(receive())
            await asyncio.sleep(0.02)
            waiting.cancel()
            await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError):
                body = str(await asyncio.wait_for(receive(), 0.2)).encode()  # (nothing comes: the client stays)
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            for part in (b"one\n", b"two\n", b"three\n"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/empty":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/too-long":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"abc"})
            return
        if path.startswith("/scope"):  # what the app is told of the request; headers named as apps may
            seen = {k: scope[k] for k in ("http_version", "method", "path", "raw_path", "query_string", "headers")}
            out = repr(seen).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"Content-Length", b"%d" % len(out)), (b"X-Kind", b"scope")]})
            await send({"type": "http.response.body", "body": out})
            return
        if path == "/inject":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1\r\nx-evil: 1")]})
            return
        out = b"%s %s %s %s" % (scope["method"].encode(), scope["raw_path"], scope["query_string"],
                                hashlib.sha256(body).hexdigest()[:16].encode())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(out))]})
        await send({"type": "http.response.body", "body": out})

    async def _stream_forever(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        watch = asyncio.ensure_future(receive())
        await receive()  # (the empty body)
        watch.cancel()
        gone = asyncio.ensure_future(receive())
        while not gone.done():
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.02)
        if gone.result()["type"] == "http.disconnect":
            self.seen_disconnect.set()
        await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})  # dropped


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(body).hexdigest()[:16].encode()


@pytest.fixture
def app_server() -> Iterator[tuple[App, ServerThread]]:
    app = App()
    with ServerThread(app, ServerConfig(keep_alive_timeout_s=1)) as s:
        app.server = s.server
        yield app, s


def _connect(s: ServerThread) -> socket.socket:
    return socket.create_connection(("127.0.0.1", s.port), timeout=5)


def _read_all(c: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = c.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


def _read_response(c: socket.socket) -> tuple[bytes, bytes]:
    """One sized response: its head and body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = c.recv(65536)
        assert data, buf
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    sizes = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(sizes[0])
    while len(body) < length:
        body += c.recv(65536)
    return head, body


def test_pipelined_requests_are_answered_in_order(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"GET /a?x=1 HTTP/1.1\r\nhost: x\r\n\r\n"
                  b"POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
                  b"GET /c HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        out = _read_all(c)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in out.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert [b[:len(b) - 17] for b in bodies] == [b"GET /a x=1", b"POST /b ", b"GET /c "]
    assert bodies[1].endswith(_digest(b"hello"))
    assert out.count(b"connection: close") == 1


def test_receive_still_waits_after_a_task_waiting_in_it_was_cancelled(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"GET /cancelled-wait HTTP/1.1\r\nhost: x\r\n\r\n")
        head, body = _read_response(c)
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"GET /cancelled-wait  " + _digest(b"")


def test_a_chunked_request_body_arrives_whole(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(0.05)
        c.sendall(b"2\r\nde\r\n0\r\n\r\n")
        head, body = _read_response(c)
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"POST /c  " + _digest(b"abcde")


def test_expect_100_continue_is_answered_before_the_body(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
        assert c.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.sendall(b"data")
        head, body = _read_response(c)
    assert head.startswith(b"HTTP/1.1 200 ") and body.endswith(_digest(b"data"))


def test_http_1_0_closes_unless_asked_to_keep_alive_and_never_chunks(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"GET /a HTTP/1.0\r\n\r\n")
        out = _read_all(c)  # (the server closes)
        assert out.startswith(b"HTTP/1.1 200 ") and b"connection: close" in out
    with _connect(s) as c:
        c.sendall(b"GET /a HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        head, _ = _read_response(c)
        assert b"connection: keep-alive" in head
        c.sendall(b"GET /stream HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        out = _read_all(c)
    assert b"transfer-encoding" not in out and out.endswith(b"\r\n\r\none\ntwo\nthree\n")


def test_each_request_gets_its_own_scope_on_a_kept_alive_connection(app_server) -> None:
    """Version, method, target and headers per request (a target seen before included); a response
    whose header names are not lowercase still gets its framing from them."""
    _, s = app_server
    requests = [
        (b"GET /scope/a%20b?q=1 HTTP/1.1\r\nHost: x\r\nX-Pad:  v \t\r\n\r\n",
         {"http_version": "1.1", "method": "GET", "path": "/scope/a b", "raw_path": b"/scope/a%20b",
          "query_string": b"q=1", "headers": [(b"host", b"x"), (b"x-pad", b"v")]}),
        (b"POST /scope/a%20b?q=1 HTTP/1.1\r\nhost: x\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
         {"http_version": "1.1", "method": "POST", "path": "/scope/a b", "raw_path": b"/scope/a%20b",
          "query_string": b"q=1", "headers": [(b"host", b"x"), (b"connection", b"keep-alive"),
                                              (b"content-length", b"0")]}),
        (b"GET http://x/scope/c HTTP/1.0\r\nconnection: keep-alive\r\n\r\n",
         {"http_version": "1.0", "method": "GET", "path": "/scope/c", "raw_path": b"/scope/c",
          "query_string": b"", "headers": [(b"connection", b"keep-alive")]}),
    ]
    with _connect(s) as c:
        for request, expected in requests:
            c.sendall(request)
            head, body = _read_response(c)
            assert head.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding" not in head
            assert ast.literal_eval(body.decode()) == expected
        assert b"connection: keep-alive" in head  # (HTTP/1.0 kept alive as asked)


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        _read_response(c)
        t0 = time.monotonic()
        assert c.recv(10) == b""  # closed by the server, without a response
        assert 0.9 < time.monotonic() - t0 < 3


def test_a_streamed_response_is_chunked_and_the_connection_kept(app_server) -> None:
    _, s = app_server
    with httpx.Client(base_url=s.url) as client:
        with client.stream("GET", "/stream") as r:
            assert r.headers["transfer-encoding"] == "chunked"
            assert b"".join(r.iter_raw()) == b"one\ntwo\nthree\n"
        assert client.get("/a").text.startswith("GET /a")  # the same connection, reused
        assert len(s.server.server_state.connections) == 1


def test_the_app_sees_a_client_that_leaves_mid_stream(app_server) -> None:
    app, s = app_server
    with _connect(s) as c:
        c.sendall(b"GET /stream-forever HTTP/1.1\r\nhost: x\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 200 ")
    assert app.seen_disconnect.wait(5)


def test_an_app_error_is_a_500_without_internals_logged_once(app_server) -> None:
    _, s = app_server
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        for path in (b"/boom", b"/nothing"):
            with _connect(s) as c:
                c.sendall(b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % path)
                out = _read_all(c)
            assert out.startswith(b"HTTP/1.1 500 ") and b"connection: close" in out
            assert b'"internal_error"' in out and b"a bug" not in out and b"Traceback" not in out
    finally:
        logger.removeHandler(handler)
    assert [r.levelname for r in records] == ["ERROR", "ERROR"]
    assert records[0].exc_info is not None and "without starting" in records[1].getMessage()


@pytest.mark.parametrize(("path", "never"), [(b"/inject", b"x-evil"), (b"/too-long", b"abc")])
def test_a_response_the_app_gets_wrong_is_a_500_not_a_broken_response(app_server, path, never) -> None:
    """A header value with CR LF (response splitting), a body longer than its content-length."""
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % path)
        out = _read_all(c)
    assert out.startswith(b"HTTP/1.1 500 ") and never not in out


def test_a_head_over_the_limit_in_a_single_read_gets_431() -> None:
    with ServerThread(App(), ServerConfig(max_header_bytes=8192)) as s:
        with _connect(s) as c:
            c.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 9000 + b"\r\n\r\n")
            assert _read_all(c).startswith(b"HTTP/1.1 431 ")
        with _connect(s) as c:
            c.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 7000 + b"\r\nconnection: close\r\n\r\n")
            assert _read_all(c).startswith(b"HTTP/1.1 200 ")


def test_head_204_and_invalid_requests(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"HEAD /a HTTP/1.1\r\nhost: x\r\n\r\nGET /empty HTTP/1.1\r\nhost: x\r\n\r\n"
                  b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        out = _read_all(c)
    head_resp, rest = out.split(b"\r\n\r\n", 1)
    assert b"content-length: 25" in head_resp and rest.startswith(b"HTTP/1.1 204 ")  # no body after HEAD's head
    empty, last = rest.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in empty and last.startswith(b"HTTP/1.1 200 ")
    with _connect(s) as c:
        c.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        out = _read_all(c)
    assert out.startswith(b"HTTP/1.1 400 ") and b"invalid HTTP request" in out
    with _connect(s) as c:
        c.sendall(b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
                  b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        out = _read_all(c)
    assert out.startswith(b"HTTP/1.1 400 ") and b"WebSocket" in out


def test_an_ignored_upgrade_is_served_as_http_1_1(app_server) -> None:
    _, s = app_server
    with _connect(s) as c:
        c.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\n"
                  b"http2-settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
        head, body = _read_response(c)
        assert head.startswith(b"HTTP/1.1 200 ") and body.startswith(b"GET /a")
        c.sendall(b"GET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_response(c)[1].startswith(b"GET /b")


def test_a_large_body_pauses_reading_until_the_app_reads_it(app_server) -> None:
    app, s = app_server
    body = bytes(range(256)) * 8192  # 2 MiB
    r = httpx.post(f"{s.url}/slow-reader", content=body, timeout=10)
    assert r.text.endswith(_digest(body).decode())
    assert app.paused_seen


def test_shutdown_finishes_the_request_in_flight_then_closes(app_server) -> None:
    app, s = app_server
    with _connect(s) as busy, _connect(s) as idle:
        idle.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        _read_response(idle)
        busy.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        assert app.started.wait(5)
        s.server.should_exit = True
        assert idle.recv(10) == b""  # an idle connection is closed at once
        out = _read_all(busy)
    assert out.startswith(b"HTTP/1.1 200 ") and b"connection: close" in out.split(b"\r\n\r\n")[0]
    assert out.endswith(b"GET /slow  " + _digest(b""))
    s.thread.join(5)
    assert not s.thread.is_alive()


def test_uvicorn_limit_max_requests_and_limit_concurrency_hold() -> None:
    s = ServerThread(App())
    s.server.config.limit_concurrency = 2  # (read by each new connection)
    s.server.config.limit_max_requests = 3  # (read by uvicorn's main loop)
    with s, _connect(s) as first:
        first.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_response(first)[0].startswith(b"HTTP/1.1 200 ")
        with _connect(s) as second:
            second.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
            out = _read_all(second)
        assert out.startswith(b"HTTP/1.1 503 ") and b"connection: close" in out
        first.sendall(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_response(first)[0].startswith(b"HTTP/1.1 200 ")
        s.thread.join(5)  # three requests answered: uvicorn stops the server
        assert not s.thread.is_alive()
