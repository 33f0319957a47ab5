"""The in-loop HTTP/1.1 client (providers/h1_client.py) against scripted servers on loopback: each
server reads a request and answers with exactly the bytes a test gives it, so the client meets
the answers real servers send (sized, chunked, until close, interim, garbage) and the ways they
drop connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.errors import ConnectionFailed, Timeout
from modelyard.providers import h1_client
from modelyard.providers.http import HttpClients, header_lines, make_endpoint, open_stream, post

REQUEST = b"POST /v1/x HTTP/1.1\r\nhost: test\r\ncontent-length: 2\r\n\r\n{}"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Scripted:
    """A TCP server whose `handler(reader, writer, connection_number)` plays one connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests = 0
        self.closed = asyncio.Event()  # a connection ended (client side dropped it, or we did)

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            writer.close()

    def pool(self, connect_s: float = 5.0) -> h1_client.Pool:
        return h1_client.Pool("127.0.0.1", self.port, connect_s)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    size = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(size)


def answering(*answers: bytes, close_after: bool = False) -> Handler:
    """Answer each request on a connection with the next of `answers`."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        if not close_after:
            await reader.read()  # keep the connection until the client drops it
    return handler


async def test_sized_answer_and_the_connection_is_kept_for_the_next_call() -> None:
    async with Scripted(answering(OK, OK)) as srv:
        pool = srv.pool()
        for _ in range(2):
            status, headers, body = await pool.post(REQUEST, 5)
            assert (status, body, headers.get("Content-Type")) == (200, b'{"a":1}', "application/json")
        assert srv.connections == 1 and len(pool.idle) == 1
        pool.close()


async def test_chunked_answer_until_close_answer_and_interim_answers() -> None:
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    async with Scripted(answering(chunked, until_close, close_after=True)) as srv:
        pool = srv.pool()
        status, headers, body = await pool.post(REQUEST, 5)
        assert (status, body, headers.get("transfer-encoding")) == (201, b"abcde", "chunked")
        status, _, body = await pool.post(REQUEST, 5)  # the answer ends with the connection
        assert (status, body) == (200, b"all of it")
        assert srv.connections == 1 and pool.idle == []  # an answer that ends the connection is not reused


async def test_a_reused_connection_the_server_closed_is_retried_once_on_a_new_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 1:  # answers once with keep-alive, then drops the connection as the next request comes
            writer.write(OK)
            await writer.drain()
            await read_request(reader)
            return
        srv.requests += 1
        writer.write(OK)
        await writer.drain()
        await reader.read()

    async with Scripted(handler) as srv:
        pool = srv.pool()
        assert (await pool.post(REQUEST, 5))[0] == 200
        assert (await pool.post(REQUEST, 5))[2] == b'{"a":1}'  # sent on the old one, answered on a new one
        assert srv.connections == 2 and srv.requests == 1
        pool.close()


async def test_a_new_connection_closed_before_the_answer_is_an_error_not_a_retry() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)

    async with Scripted(handler) as srv:
        with pytest.raises(h1_client.Closed, match="closed the connection before the end of its answer"):
            await srv.pool().post(REQUEST, 5)
        assert srv.connections == 1


async def test_an_answer_cut_short_is_an_error_even_on_a_reused_connection() -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial"
    async with Scripted(answering(OK, cut, close_after=True)) as srv:
        pool = srv.pool()
        await pool.post(REQUEST, 5)
        with pytest.raises(h1_client.Closed):  # bytes of the answer came back: never sent twice
            await pool.post(REQUEST, 5)
        assert srv.connections == 1


async def test_total_timeout_and_cancellation_drop_the_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        await reader.read()  # returns once the client drops the connection

    async with Scripted(silent) as srv:
        with pytest.raises(TimeoutError):
            await srv.pool().post(REQUEST, 0.1)
        await asyncio.wait_for(srv.closed.wait(), 5)
        srv.closed.clear()
        call = asyncio.ensure_future(srv.pool().post(REQUEST, 30))
        await asyncio.sleep(0.05)
        call.cancel()
        await asyncio.wait_for(srv.closed.wait(), 5)  # the upstream learns that nobody waits
        assert call.cancelled()


async def test_not_http_and_not_listening() -> None:
    async with Scripted(answering(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as srv:
        with pytest.raises(h1_client.BadResponse, match=r"not an HTTP/1\.1 answer"):
            await srv.pool().post(REQUEST, 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it
    with pytest.raises(h1_client.ConnectFailed, match="Connection refused"):
        await h1_client.Pool("127.0.0.1", port, 5).post(REQUEST, 5)


async def test_a_stream_hands_over_what_arrived_and_frees_its_connection_at_the_end() -> None:
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        for call in (1, 2):
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"5\r\nfirst\r\n")
            await writer.drain()
            if call == 2:
                await reader.read()  # until the client drops the connection
                return
            await go.wait()
            writer.write(b"6\r\nsecond\r\n5\r\nthird\r\n0\r\n\r\n")
            await writer.drain()

    async with Scripted(handler) as srv:
        pool = srv.pool()
        s = await pool.open(REQUEST, 5)
        assert (s.status, s.headers.get("content-type")) == (200, "text/event-stream")
        assert await s.read() == b"first"
        go.set()
        rest = b""
        while chunk := await s.read():
            rest += chunk
        assert rest == b"secondthird" and s.eof and len(pool.idle) == 1
        s = await pool.open(REQUEST, 5)  # same connection; closed before its end: dropped
        assert await s.read() == b"first" and srv.connections == 1
        s.close()
        await asyncio.wait_for(srv.closed.wait(), 5)
        assert pool.idle == []


async def test_a_stream_nobody_reads_pauses_the_upstream_and_loses_nothing() -> None:
    size = 4 * h1_client.READ_HIGH_WATER

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()
        await reader.read()

    async with Scripted(handler) as srv:
        pool = srv.pool()
        s = await pool.open(REQUEST, 30)
        await asyncio.sleep(0.2)  # the upstream writes until the client stops reading
        got = 0
        while chunk := await s.read():
            assert len(chunk) <= 2 * h1_client.READ_HIGH_WATER
            got += len(chunk)
        assert got == size and len(pool.idle) == 1
        pool.close()


def deployment(port: int, **kw: Any) -> Deployment:
    return Deployment(name="d", provider="openai", model="m", card=unknown_card("m", "openai"),
                      api_base=f"http://127.0.0.1:{port}/v1", **kw)


async def test_failures_reach_the_adapters_named_for_the_deployment() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        await reader.read()

    clients = HttpClients()
    async with Scripted(silent) as srv:
        dep = deployment(srv.port, timeout_s=0.1)
        ep = make_endpoint(dep, f"{dep.api_base}/x", {"authorization": "Bearer sk-secret-123456"})
        with pytest.raises(Timeout, match="deployment 'd' timed out"):
            await post(clients, dep, ep, ep.url, b"{}")
        with pytest.raises(Timeout):
            await open_stream(clients, dep, ep, ep.url, b"{}")
    async with Scripted(answering(b"garbage\r\n\r\n")) as srv:
        dep = deployment(srv.port)
        ep = make_endpoint(dep, f"{dep.api_base}/x", {})
        with pytest.raises(ConnectionFailed, match=r"deployment 'd' failed: not an HTTP/1\.1 answer"):
            await post(clients, dep, ep, ep.url, b"{}")
    await clients.close()


async def test_the_request_carries_the_endpoint_headers_and_the_body() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        seen.append(await read_request(reader))
        writer.write(OK)
        await writer.drain()
        await reader.read()

    clients = HttpClients()
    async with Scripted(handler) as srv:
        dep = deployment(srv.port)
        ep = make_endpoint(dep, f"{dep.api_base}/chat/completions?v=1", {"Authorization": "Bearer k", "x-a": "b"})
        assert (await post(clients, dep, ep, ep.url, b'{"q":1}'))[0] == 200
    await clients.close()
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions?v=1 HTTP/1.1" and body == b'{"q":1}'
    assert {b"authorization: Bearer k", b"x-a: b", b"content-length: 7", f"host: 127.0.0.1:{srv.port}".encode()
            } <= set(lines)


def test_headers_that_cannot_go_on_the_wire_leave_the_endpoint_to_wreq() -> None:
    assert header_lines({"a": "b", "c": "d"}) == b"a: b\r\nc: d\r\n"
    for bad in ({"a": "b\r\nx-injected: 1"}, {"a": "b\n"}, {"a b": "c"}, {"a:": "b"}, {"a": "\u20ac"}, {"": "b"}):
        assert header_lines(bad) is None, bad
    dep = deployment(1)
    assert make_endpoint(dep, "http://x/v1", {"authorization": "Bearer k\n"}).h1_headers is None
