"""What the HTTP adapters share (providers/http.py), below the adapters: SSE framing, the
coalescing body reader, header preparation and the mapping of client failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from wreq import exceptions as wx

from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.errors import ConnectionFailed, Timeout
from modelyard.providers.http import make_endpoint
from modelyard.providers.sse import sse_batches
from modelyard.providers.streams import WreqStream
from modelyard.providers.transport import transport_errors


def reader(*pieces: bytes) -> Any:
    parts = list(pieces)

    async def read() -> bytes:
        return parts.pop(0) if parts else b""
    return read


async def batches(*pieces: bytes) -> list[list[tuple[bytes, bytes]]]:
    return [b async for b in sse_batches(reader(*pieces))]


async def test_sse_one_line_events_and_the_general_form_agree() -> None:
    fast = await batches(b'data: {"a":1}\n\ndata: {"a":2}\n\n')
    assert fast == [[(b"", b'{"a":1}'), (b"", b'{"a":2}')]]
    general = await batches(b': comment\nevent: delta\ndata: line one\ndata:line two\nid: 7\n\n'
                            b'data: {"a":3}\r\n\r\n')
    assert general == [[(b"delta", b"line one\nline two"), (b"", b'{"a":3}')]]


async def test_sse_event_split_across_reads_and_unterminated_end() -> None:
    got = await batches(b'data: {"a"', b':1}\n', b'\ndata: {"b":2}\n\nevent: x\ndata: tail')
    assert got == [[(b"", b'{"a":1}'), (b"", b'{"b":2}')], [(b"x", b"tail")]]  # per read that finished events
    assert await batches(b"\n\n\n", b": only a comment\n\n") == []


YIELD = object()  # a step of FakeBody that suspends once without a future


class FakeBody:
    """Stands in for the client's body stream: each `__anext__()` is a coroutine that finishes at
    once (a chunk the client already holds), waits on a future, or raises."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.exited = False

    def __anext__(self) -> Any:
        step = self.script.pop(0) if self.script else StopAsyncIteration()

        async def next_piece() -> Any:
            if step is YIELD:
                await asyncio.sleep(0)  # a bare yield: the client asks to be resumed, with no future
                return memoryview(b"y")
            if isinstance(step, asyncio.Future):
                return memoryview(await step)
            if isinstance(step, BaseException):
                raise step
            return memoryview(step)
        return next_piece()

    async def __aexit__(self, *exc: object) -> None:
        self.exited = True


def stream_over(body: FakeBody) -> WreqStream:
    s = WreqStream("dep")
    s._body, s._open = body, True  # type: ignore[attr-defined]
    return s


async def test_read_takes_what_is_there_and_parks_what_is_not() -> None:
    later: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    body = FakeBody([b"a", b"b", b"c", later, b"d"])
    s = stream_over(body)
    assert await s.read() == b"abc"  # three ready pieces, one read; the fourth is parked, not awaited
    asyncio.get_running_loop().call_later(0.01, later.set_result, b"late")
    assert await s.read() == b"lated"  # the parked read finishes, and what follows it at once joins
    assert await s.read() == b"" and s.eof
    await s.close()
    assert body.exited


async def test_a_failure_after_data_comes_after_the_data() -> None:
    s = stream_over(FakeBody([b"partial", wx.ConnectionResetError("reset by peer")]))
    assert await s.read() == b"partial"
    with pytest.raises(wx.ConnectionResetError):
        await s.read()


async def test_close_cancels_a_parked_read() -> None:
    pending: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    body = FakeBody([b"a", pending])
    s = stream_over(body)
    assert await s.read() == b"a"
    await s.close()
    assert pending.cancelled() and body.exited


def test_prepared_headers_fold_names_so_configured_ones_replace_defaults() -> None:
    dep = Deployment(name="d", provider="openai", model="m", card=unknown_card("m", "openai"), timeout_s=7)
    ep = make_endpoint(dep, "http://x/v1/chat/completions", {"content-type": "application/json",
                                                             "Content-Type": "application/json; charset=utf-8"})
    assert ep.headers == {"content-type": "application/json; charset=utf-8"}
    assert ep.timeout.total_seconds() == 7 and ep.stream_url == ep.url


@pytest.mark.parametrize(("error", "cls", "text"), [
    (wx.BodyError("is_body error: wreq::Error { kind: Body, source: TimedOut }"), Timeout, "timed out"),
    (wx.ConnectionError('source: Some(ConnectError("tcp connect error", Os { code: 111, kind: '
                        'ConnectionRefused, message: "Connection refused" }))'), ConnectionFailed,
     "cannot connect to deployment 'd': Connection refused"),
    (wx.ConnectionResetError("source: Some(Io(Kind(ConnectionReset)))"), ConnectionFailed,
     "deployment 'd' closed the connection"),
])
def test_client_failures_map_to_the_taxonomy(error: Exception, cls: type, text: str) -> None:
    with pytest.raises(cls) as info, transport_errors("d"):
        raise error
    assert text in info.value.message and "wreq::Error" not in info.value.message


async def test_close_after_a_read_parked_on_a_bare_yield() -> None:
    """A client coroutine may suspend without a future (resume me); closing the stream then must
    not fail, or a stream's error path turns into a 500 instead of a fallback."""
    body = FakeBody([b"a", YIELD])
    s = stream_over(body)
    assert await s.read() == b"a"  # the next piece suspended bare: parked
    await s.close()
    assert body.exited
