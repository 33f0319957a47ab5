"""A client that stops reading a stream holds the upstream back: the gateway buffers a bounded
amount (the kernel's socket buffers, most of it; the server's write buffer; the upstream client's
read-ahead), never the whole answer, and once the client reads again every event arrives, in order,
none lost. On this box the upstream stalls after 2,200-2,900 of the 12,000 events (9-12 MB, the
loopback sockets' autotuned buffers); a gateway that read the upstream ahead of its client would
let it write them all."""

from __future__ import annotations

import socket
import time

import orjson
from aiohttp import web
from upstreamkit import ThreadedUpstream

from conftest import make_server

EVENTS = 12_000
TEXT = "x" * 4000  # ~4 KB per event: ~49 MB in all, more than every buffer on the way can hold
BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "flood"}


def _event(i: int) -> bytes:
    choice = {"index": 0, "delta": {"content": f"{i:06d}{TEXT}"}, "finish_reason": None}
    return b"data: " + orjson.dumps({**BASE, "choices": [choice]}) + b"\n\n"


class FloodUpstream:
    """Streams EVENTS big events as fast as its socket takes them, counting what it has written."""

    def __init__(self) -> None:
        self.written = 0  # events handed to the socket (aiohttp's write waits while its buffer is full)
        self.finished = False
        self.server = ThreadedUpstream(self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(EVENTS):
            await resp.write(_event(i))
            self.written = i + 1
        last = {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        counts = {"prompt_tokens": 3, "completion_tokens": EVENTS, "total_tokens": 3 + EVENTS}
        usage = {**BASE, "choices": [], "usage": counts}
        await resp.write(b"data: " + orjson.dumps(last) + b"\n\ndata: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        self.finished = True
        return resp


def _request(port: int) -> socket.socket:
    body = orjson.dumps({"model": "g", "stream": True, "messages": [{"role": "user", "content": "flood"}]})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # a slow reader's small window
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n%s" % (len(body), body))
    return sock


def _written_when_stalled(up: FloodUpstream) -> int:
    """What the upstream had written once it made no progress for 0.5 s."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = up.written
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            return now
        time.sleep(0.05)
    raise AssertionError("the upstream never stalled")


def test_a_client_that_stops_reading_holds_the_upstream_back_and_loses_nothing(tmp_path) -> None:
    up = FloodUpstream()
    cfg = {"deployments": {"flood": {"provider": "openai", "model": "flood", "api_base": up.server.api_base}},
           "model_groups": {"g": {"deployments": ["flood"]}}}
    with make_server(tmp_path, cfg) as s:
        sock = _request(s.port)
        try:
            head = sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            stalled = _written_when_stalled(up)  # the client reads nothing meanwhile
            assert not up.finished and stalled < EVENTS // 2, f"upstream wrote {stalled} of {EVENTS} events"

            # The client reads again: everything arrives, in order, and the stream ends properly.
            received = bytearray(head)
            sock.settimeout(30)
            while not received.endswith(b"0\r\n\r\n"):  # the chunked body's end
                piece = sock.recv(1 << 20)
                assert piece, "the gateway closed the stream early"
                received += piece
        finally:
            sock.close()
    assert up.finished
    body = bytes(received)
    assert b"data: [DONE]" in body
    seen = [int(body[i + 11:i + 17]) for i in _find_all(body, b'"content":"')]  # each event's number
    assert seen == list(range(EVENTS))


def _find_all(data: bytes, needle: bytes) -> list[int]:
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out
