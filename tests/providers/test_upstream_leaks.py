"""What an upstream says never leaks: each adapter against a real aiohttp server on loopback that
echoes the credentials it was sent and leaks its own (a database URL, a bearer token).

Client errors carry our wording, the upstream's status and error type; the log keeps a truncated,
redacted excerpt. An upstream's 401/403 is a 502 about the gateway's credentials, and a hostile
Retry-After (inf, NaN, huge, negative) is clamped rather than crashing the error path.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.errors import EXCERPT_CHARS, ModelyardError, RateLimited, excerpt, redact
from modelyard.providers import provider_class
from modelyard.providers.base import Provider
from modelyard.types import ChatRequest, Message

pytestmark = pytest.mark.usefixtures("each_client")  # once per upstream client (tests/conftest.py)

KEY = "sk-proj-Zq8mN3vR7tY2wX5pL9kJ4hG6fD1sA0"
HEADER_SECRET = "org-secret-7f3a9c2e1b"
DB_URL = "postgres://admin:hunter2@db.internal:5432/prod"
LEAKS = (KEY, HEADER_SECRET, "hunter2", "Zq8mN3vR7t", "7f3a9c2e1b")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Upstream:
    url = ""
    handler: Handler | None = None

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    fake = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    yield fake
    await runner.cleanup()


def echoed(request: web.Request) -> str:
    """Everything secret the request carried, plus what a careless upstream leaks of its own."""
    creds = " ".join(f"{k}={v}" for k, v in request.headers.items())
    return f"failed: {creds} while talking to {DB_URL} (Bearer eyJhbGciOiJIUzI1NiJ9.payload)"


def answer(status: int, body: bytes | Callable[[web.Request], bytes], content_type: str = "application/json",
           headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        data = body(request) if callable(body) else body
        return web.Response(body=data, status=status, content_type=content_type, headers=headers)
    return handle


def stream_of(payload: Callable[[web.Request], bytes]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: " + payload(request) + b"\n\n")
        await resp.write_eof()
        return resp
    return handle


async def call(kind: str, url: str, *, stream: bool = False) -> ModelyardError:
    provider: Provider = provider_class(kind)()
    dep = Deployment(name="leaky", provider=kind, model="m-1", card=unknown_card("m-1", kind), api_base=url,
                     api_key=KEY, headers={"X-Org-Token": HEADER_SECRET})
    provider.prepare(dep)
    req = ChatRequest(model="leaky", messages=[Message("user", "hi")], stream=stream)
    try:
        with pytest.raises(ModelyardError) as info:
            if stream:
                async for _ in provider.stream(req, dep):
                    pass
            else:
                await provider.complete(req, dep)
    finally:
        await provider.close()
    return info.value


def assert_nothing_leaks(err: ModelyardError, *upstream_words: str) -> None:
    shown = " ".join((err.message, str(err), repr(err), orjson.dumps(err.openai_body()).decode(),
                      orjson.dumps(err.anthropic_body()).decode()))
    for secret in (*LEAKS, *upstream_words):
        assert secret not in shown, f"{secret!r} reached the client: {err.message}"
    assert "'leaky'" in err.message


def assert_log_redacted(caplog: pytest.LogCaptureFixture) -> None:
    records = [r.getMessage() for r in caplog.records if r.name == "modelyard.providers"]
    assert records, "the upstream body was not logged at all"
    for text in records:
        for secret in LEAKS:
            assert secret not in text, f"{secret!r} reached the log: {text}"
        body = text.split("; body: ", 1)[1]
        assert len(body) <= EXCERPT_CHARS


# --- bodies that are not the protocol ------------------------------------------------------------------

BODY_CASES = [
    # a 200 without choices, echoing the request's credentials
    pytest.param("openai", False, answer(200, lambda r: orjson.dumps({"object": "x", "detail": echoed(r)})),
                 id="openai-200-without-choices"),
    # a 200 that is not JSON
    pytest.param("openai", False, answer(200, lambda r: echoed(r).encode(), "text/plain"), id="openai-200-not-json"),
    # an error status whose body is HTML
    pytest.param("openai", False, answer(500, lambda r: f"<html>{echoed(r)}</html>".encode(), "text/html"),
                 id="openai-500-html"),
    # a stream event that is not JSON
    pytest.param("openai", True, stream_of(lambda r: echoed(r).encode()), id="openai-stream-not-json"),
    # a stream chunk of the wrong shape
    pytest.param("openai", True, stream_of(lambda r: orjson.dumps(
        {"choices": [{"index": 0, "delta": {"content": {"oops": echoed(r)}}}]})), id="openai-malformed-chunk"),
    pytest.param("anthropic", False, answer(200, lambda r: echoed(r).encode(), "text/plain"),
                 id="anthropic-200-not-json"),
    pytest.param("anthropic", False, answer(502, lambda r: echoed(r).encode(), "text/plain"),
                 id="anthropic-502-text"),
    pytest.param("anthropic", True, stream_of(lambda r: echoed(r).encode()), id="anthropic-stream-not-json"),
    pytest.param("gemini", False, answer(503, lambda r: echoed(r).encode(), "text/plain"), id="gemini-503-text"),
    pytest.param("gemini", True, stream_of(lambda r: echoed(r).encode()), id="gemini-stream-not-json"),
]


@pytest.mark.parametrize(("kind", "stream", "handler"), BODY_CASES)
async def test_upstream_bodies_never_reach_the_client(upstream: Upstream, caplog: pytest.LogCaptureFixture,
                                                      kind: str, stream: bool, handler: Handler) -> None:
    upstream.handler = handler
    caplog.set_level(logging.INFO, "modelyard.providers")
    err = await call(kind, upstream.url, stream=stream)
    assert_nothing_leaks(err, "postgres", "failed:", "while talking", "eyJhbGciOiJIUzI1NiJ9", "html")
    assert err.deployment == "leaky"
    assert_log_redacted(caplog)


async def test_a_structured_error_message_is_shown_redacted(upstream: Upstream) -> None:
    """An upstream's own error message (about the request) is kept, with credentials taken out."""
    upstream.handler = answer(400, lambda r: orjson.dumps({"error": {
        "message": f"Invalid 'temperature'; {echoed(r)}", "type": "invalid_request_error"}}))
    err = await call("openai", upstream.url)
    assert_nothing_leaks(err)
    assert "Invalid 'temperature'" in err.message and "invalid_request_error" in err.message
    assert "postgres://[redacted]@db.internal" in err.message and err.upstream_status == 400


# --- the gateway's credentials refused ---------------------------------------------------------------

AUTH_CASES = [
    pytest.param("openai", 401, {"error": {"message": "Incorrect API key provided: sk-proj-***A0.",
                                           "type": "invalid_request_error", "code": "invalid_api_key"}},
                 id="openai-401"),
    pytest.param("openai", 403, {"error": {"message": "not allowed", "type": "permission_error"}}, id="openai-403"),
    pytest.param("anthropic", 401, {"type": "error", "error": {"type": "authentication_error",
                                                               "message": "invalid x-api-key"}},
                 id="anthropic-401"),
    pytest.param("gemini", 403, {"error": {"code": 403, "status": "PERMISSION_DENIED",
                                           "message": "Method doesn't allow unregistered callers."}},
                 id="gemini-403"),
]


@pytest.mark.parametrize(("kind", "status", "doc"), AUTH_CASES)
@pytest.mark.parametrize("stream", [False, True])
async def test_refused_credentials_are_the_gateways_502(upstream: Upstream, kind: str, status: int,
                                                       doc: dict[str, Any], stream: bool) -> None:
    upstream.handler = answer(status, orjson.dumps(doc))
    err = await call(kind, upstream.url, stream=stream)
    assert err.status == 502 and err.type == "upstream_auth_error" and err.upstream_status == status
    assert err.code != "invalid_api_key" and err.openai_body()["error"]["code"] == "upstream_auth_error"
    assert "refused the gateway's credentials" in err.message and f"({status}" in err.message
    assert not err.retryable and not err.fallback  # an auth failure, as before: the breaker reacts
    assert_nothing_leaks(err, "Incorrect API key", "not allowed", "invalid x-api-key", "unregistered")


# --- Retry-After ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "value", "expected"), [
    ("Retry-After", "inf", 3600.0),
    ("Retry-After", "Infinity", 3600.0),
    ("Retry-After", "nan", None),
    ("Retry-After", "1e308", 3600.0),
    ("Retry-After", "-30", 0.0),
    ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
    ("retry-after-ms", "inf", 3600.0),
    ("retry-after-ms", "-5", 0.0),
    ("Retry-After", "5", 5.0),
])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
async def test_hostile_retry_after_is_clamped(upstream: Upstream, kind: str, header: str, value: str,
                                              expected: float | None) -> None:
    upstream.handler = answer(429, b'{"error": {"message": "slow down", "type": "rate_limit_error"}}',
                              headers={header: value})
    err = await call(kind, upstream.url)
    assert isinstance(err, RateLimited)
    if kind == "openai" or header == "Retry-After":  # retry-after-ms is OpenAI's
        assert err.retry_after == expected
    rendered = err.headers()  # what the server sends: must not raise (round(inf) did)
    assert all(v.decode().isdigit() and int(v) <= 3600 for _, v in rendered)


def test_retry_after_given_directly_is_clamped() -> None:
    assert RateLimited("x", retry_after=float("inf")).headers() == [(b"retry-after", b"3600")]
    assert RateLimited("x", retry_after=float("nan")).retry_after is None
    assert RateLimited("x", retry_after=-1.0).retry_after == 0.0


# --- the redaction rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("leak", [
    "sk-ant-api03-AbCdEfGhIjKlMnOp", "sk-proj-AbCdEfGhIjKlMnOp", "gsk_AbCdEfGhIjKlMnOpQr", "xai-AbCdEfGhIjKlMnOp",
    "AIzaSyAbCdEfGhIjKlMnOpQrStUvWxYz0123456", "hf_AbCdEfGhIjKlMnOp", "ghp_AbCdEfGhIjKlMnOpQrSt",
])
def test_keys_of_known_shapes_are_redacted(leak: str) -> None:
    assert leak not in redact(f"the key {leak} was rejected")
    assert "[redacted]" in redact(f"the key {leak} was rejected")


def test_credentials_in_urls_headers_and_pairs_are_redacted() -> None:
    text = redact(f"{DB_URL} Authorization: Bearer abc.def-ghi_jkl api_key=s3cr3tvalue "
                  '{"password": "pa55word"} and my-own-value', secrets=["my-own-value"])
    for gone in ("hunter2", "abc.def-ghi_jkl", "s3cr3tvalue", "pa55word", "my-own-value"):
        assert gone not in text
    assert "postgres://[redacted]@db.internal:5432/prod" in text
    assert redact("max_tokens: 4096, the context length is 8192 tokens") == \
        "max_tokens: 4096, the context length is 8192 tokens"  # ordinary words stay


def test_the_log_excerpt_is_bounded_and_never_cuts_a_key_in_half() -> None:
    body = ("x" * (EXCERPT_CHARS - 5) + KEY + "y" * 10_000).encode()
    out = excerpt(body, [KEY])
    assert len(out) <= EXCERPT_CHARS and KEY[:5] not in out
