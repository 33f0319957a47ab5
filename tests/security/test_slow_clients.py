"""Slow, idle and flooding clients against the real server (server/protocol.py, server/app.py):
a late head is 408, a late body 408, an oversized head 431, a connection past the cap 503 —
each answered and closed, so none can hold the gateway's connections or memory."""

from __future__ import annotations

import time

import httpx
import orjson
from aiohttp import web
from kit import ANSWER, GuardedServer, Upstream, one_deployment, read_response


async def _answer(request: web.Request) -> web.Response:
    return web.json_response(ANSWER)


def _server(tmp_path, **limits) -> GuardedServer:
    up = Upstream(_answer)
    return GuardedServer(tmp_path, one_deployment(up.api_base, **limits))


BODY = orjson.dumps({"model": "g", "messages": [{"role": "user", "content": "hi"}]})


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(tmp_path) -> None:
    with _server(tmp_path, header_timeout_s=0.3) as s, s.connect() as c:
        t0 = time.monotonic()
        out = read_response(c)
        assert out.startswith(b"HTTP/1.1 408 ")
        assert b"request_timeout" in out
        assert time.monotonic() - t0 < 3


def test_headers_trickled_a_byte_at_a_time_get_408(tmp_path) -> None:
    with _server(tmp_path, header_timeout_s=0.5) as s, s.connect() as c:
        t0 = time.monotonic()
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        c.settimeout(0.1)
        out = b""
        for byte in b"x-slow: " + b"a" * 100:  # a byte every 0.1 s: never a whole head
            try:
                c.sendall(bytes([byte]))
                out += c.recv(65536)
            except (TimeoutError, OSError):
                pass
            if out:
                break
        c.settimeout(5)
        out += read_response(c)
        assert out.startswith(b"HTTP/1.1 408 "), out
        assert time.monotonic() - t0 < 5


def test_a_body_that_never_ends_gets_408_and_the_connection_closes(tmp_path) -> None:
    with _server(tmp_path, body_timeout_s=0.3) as s, s.connect() as c:
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 1000\r\n\r\n" + BODY[:10])
        out = read_response(c)
        assert out.startswith(b"HTTP/1.1 408 "), out
        assert b"connection: close" in out.lower()
        assert b"did not arrive within 0.3 s" in out


def test_an_oversized_header_gets_431(tmp_path) -> None:
    with _server(tmp_path, max_header_bytes=8192) as s:
        r = httpx.post(s.url + "/v1/chat/completions", content=BODY, headers={"x-big": "a" * 20_000})
        assert r.status_code == 431
        assert "8192 bytes" in r.json()["error"]["message"]
        with s.connect() as c:  # one header arriving without end is cut off too, not buffered
            c.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 100_000)
            assert read_response(c).startswith(b"HTTP/1.1 431 ")
        assert httpx.post(s.url + "/v1/chat/completions", content=BODY).status_code == 200


def test_too_many_headers_get_431(tmp_path) -> None:
    with _server(tmp_path, max_headers=20) as s:
        headers = {f"x-h{i}": "v" for i in range(30)}
        assert httpx.post(s.url + "/v1/chat/completions", content=BODY, headers=headers).status_code == 431
        assert httpx.post(s.url + "/v1/chat/completions", content=BODY).status_code == 200


def test_connections_past_the_cap_get_503_and_the_gateway_serves_again_once_they_go(tmp_path) -> None:
    with _server(tmp_path, max_connections=4, header_timeout_s=30) as s:
        idle = [s.connect() for _ in range(4)]
        time.sleep(0.2)
        with s.connect() as extra:
            out = read_response(extra)
            assert out.startswith(b"HTTP/1.1 503 "), out
            assert b"retry-after: 1" in out
        for c in idle:
            c.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                r = httpx.post(s.url + "/v1/chat/completions", content=BODY)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200
