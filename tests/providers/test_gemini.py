"""GeminiProvider against a real aiohttp.web server on loopback speaking generateContent /
streamGenerateContent (SSE). Each test scripts the fake upstream; the fake records every request."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.errors import (
    BadRequest,
    ConnectionFailed,
    ContentPolicy,
    ContextWindowExceeded,
    ModelyardError,
    NotFound,
    RateLimited,
    Timeout,
    Unavailable,
    UpstreamAuth,
)
from modelyard.providers.gemini import GeminiProvider, schema_of, to_wire, tool_config_of
from modelyard.types import ChatRequest, ImagePart, Message, StreamChunk, TextPart, Tool, ToolCall

pytestmark = pytest.mark.usefixtures("each_client")  # once per upstream client (tests/conftest.py)

KEY = "AIzaTEST-SECRET-0123456789abcdefghij"
DEP = "gemini-dep"
MODEL = "gemini-test-flash"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass
class FakeGemini:
    """A scripted upstream: set `handler`, read `seen`; `disconnected` is set when a client leaves."""

    url: str = ""
    handler: Handler | None = None
    seen: list[Seen] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.path, dict(request.query), CIMultiDict(request.headers), await request.read()))
        assert self.handler is not None, "test did not script the upstream"
        try:
            return await self.handler(request)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise


@pytest.fixture
async def upstream() -> AsyncIterator[FakeGemini]:
    fake = FakeGemini()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.2, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}/v1beta"
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
async def provider() -> AsyncIterator[GeminiProvider]:
    p = GeminiProvider()
    await p.start()
    yield p
    await p.close()


def make_dep(api_base: str, **kw: Any) -> Deployment:
    kw.setdefault("model", MODEL)
    kw.setdefault("api_key", KEY)
    dep = Deployment(name=kw.pop("name", DEP), provider="gemini", card=unknown_card(DEP, "gemini"),
                     api_base=api_base, **kw)
    GeminiProvider().prepare(dep)
    return dep


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="public", messages=list(messages) or [Message("user", "hi")], **kw)


def candidate(*parts: dict[str, Any], finish: str | None = "STOP", index: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    if finish:
        c["finishReason"] = finish
    return c


def answer(*candidates: dict[str, Any], usage: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"candidates": list(candidates),
                           "usageMetadata": usage or {"promptTokenCount": 9, "candidatesTokenCount": 2,
                                                      "totalTokenCount": 11}}
    doc.update(extra)
    return doc


def json_answer(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(doc), status=status, headers=headers,
                            content_type="application/json")
    return handle


def raw_answer(body: bytes, status: int = 200, content_type: str = "application/json") -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type=content_type)
    return handle


def error_answer(code: int, status: str, message: str, details: list[Any] | None = None,
                 headers: dict[str, str] | None = None) -> Handler:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return json_answer({"error": err}, code, headers)


def sse(fragments: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(f) + b"\r\n\r\n" for f in fragments)


def sse_answer(payload: bytes, piece: int = 7, then: Callable[[], Awaitable[None]] | None = None) -> Handler:
    """Stream `payload` in `piece`-byte writes, so events and lines straddle TCP segments."""
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(payload), piece):
            await resp.write(payload[i:i + piece])
            await asyncio.sleep(0.0005)
        if then is not None:
            await then()
        await resp.write_eof()
        return resp
    return handle


def stream_fragments() -> list[dict[str, Any]]:
    """A streamed answer: text in pieces, then a function call, then the finish with usage."""
    meta = {"modelVersion": "gemini-test-flash-001", "responseId": "resp-stream-1"}
    return [
        {"candidates": [candidate({"text": "Let me "}, finish=None)],
         "usageMetadata": {"promptTokenCount": 40}, **meta},
        {"candidates": [candidate({"text": "thinking...", "thought": True}, {"text": "check."}, finish=None)],
         **meta},
        {"candidates": [candidate({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                  {"functionCall": {"name": "get_time", "args": {}}}, finish="STOP")],
         "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 12, "thoughtsTokenCount": 30,
                           "cachedContentTokenCount": 16, "totalTokenCount": 82}, **meta},
    ]


async def collect(it: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [c async for c in it]


def assert_clean(err: ModelyardError) -> None:
    """Every error names the deployment and never carries the key."""
    assert DEP in str(err)
    assert KEY not in str(err) and KEY not in repr(err)
    assert err.deployment == DEP


# --- request shape ------------------------------------------------------------------------------

async def test_request_shape_and_headers(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = json_answer(answer(candidate({"text": "ok"})))
    dep = make_dep(upstream.url, headers={"x-goog-user-project": "proj-1"})
    request = req(
        Message("system", "You are terse."),
        Message("developer", "Answer in English."),
        Message("user", "first"),
        Message("user", [TextPart("look:"), ImagePart(f"data:image/png;base64,{PNG}"),
                         ImagePart("https://example.com/pics/cat.png?size=2"),
                         ImagePart("https://example.com/render")]),
        Message("assistant", "Checking.", tool_calls=[ToolCall("call_A", "get_weather", '{"city":"Oslo"}'),
                                                      ToolCall("call_B", "get_time", "")]),
        Message("tool", '{"temp": 3}', tool_call_id="call_A"),
        Message("tool", "noon", tool_call_id="call_B"),
        Message("user", "and tomorrow?"),
        tools=[Tool("get_weather", "Weather by city",
                    {"type": "object", "additionalProperties": False, "$schema": "x",
                     "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
                     "required": ["city"]}),
               Tool("get_time")],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=1.5, top_p=0.9, max_tokens=256, stop=["END"], seed=7, n=2,
    )
    resp = await provider.complete(request, dep)
    assert resp.text == "ok"

    seen = upstream.seen[-1]
    assert seen.path == f"/v1beta/models/{MODEL}:generateContent"
    assert seen.headers["x-goog-api-key"] == KEY
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["x-goog-user-project"] == "proj-1"
    assert KEY not in seen.path and not seen.query
    body = seen.json
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse.\n\nAnswer in English."}]}
    assert body["generationConfig"] == {"temperature": 1.5, "topP": 0.9, "maxOutputTokens": 256,
                                        "stopSequences": ["END"], "seed": 7, "candidateCount": 2}
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather by city",
         "parameters": {"type": "object", "required": ["city"], "properties": {
             "city": {"type": "string"}, "days": {"type": "integer", "nullable": True}}}},
        {"name": "get_time"},
    ]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY",
                                                            "allowedFunctionNames": ["get_weather"]}}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    first, model, results = body["contents"]
    assert first["parts"] == [
        {"text": "first"},
        {"text": "look:"},
        {"inline_data": {"mime_type": "image/png", "data": PNG}},
        {"file_data": {"file_uri": "https://example.com/pics/cat.png?size=2", "mime_type": "image/png"}},
        {"file_data": {"file_uri": "https://example.com/render", "mime_type": "image/jpeg"}},
    ]
    assert model["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    assert results["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 3}}}},
        {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
        {"text": "and tomorrow?"},
    ]


async def test_minimal_request(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = json_answer(answer(candidate({"text": "ok"})))
    await provider.complete(req(Message("user", "hi"), Message("assistant", ""), Message("user", "again")),
                            make_dep(upstream.url, model="models/" + MODEL))
    seen = upstream.seen[-1]
    assert seen.path == f"/v1beta/models/{MODEL}:generateContent"
    assert seen.json == {"contents": [{"role": "user", "parts": [{"text": "hi"}, {"text": "again"}]}]}


def test_default_endpoint() -> None:
    dep = Deployment(name=DEP, provider="gemini", model="gemini-x", card=unknown_card(DEP, "gemini"), api_key=KEY)
    GeminiProvider().prepare(dep)
    base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-x"
    assert dep.endpoint.url == base + ":generateContent"
    assert dep.endpoint.stream_url == base + ":streamGenerateContent?alt=sse"


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
    ("required", {"functionCallingConfig": {"mode": "ANY"}}),
    ("none", {"functionCallingConfig": {"mode": "NONE"}}),
    ({"name": "f"}, {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}),
])
def test_tool_choice_mapping(choice: Any, config: dict[str, Any]) -> None:
    assert tool_config_of(choice) == config
    body = to_wire(req(tools=[Tool("f")], tool_choice=choice), make_dep("http://127.0.0.1:1"))
    assert body["toolConfig"] == config


async def test_json_modes(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = json_answer(answer(candidate({"text": "{}"})))
    dep = make_dep(upstream.url)
    await provider.complete(req(response_format={"type": "json_object"}), dep)
    assert upstream.seen[-1].json["generationConfig"] == {"responseMimeType": "application/json"}

    schema = {"type": "object", "additionalProperties": False,
              "properties": {"tags": {"type": "array", "items": {"type": "string", "additionalProperties": 1}}},
              "required": ["tags"]}
    await provider.complete(req(response_format={"type": "json_schema",
                                                 "json_schema": {"name": "t", "strict": True, "schema": schema}}),
                            dep)
    assert upstream.seen[-1].json["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "required": ["tags"],
                           "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
    }


def test_schema_sanitizer_keeps_supported_fields() -> None:
    s = {"type": "object", "title": "T", "properties": {
        "kind": {"type": "string", "enum": ["a", "b"], "description": "d"},
        "n": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}}}
    assert schema_of(s) == s


def test_bad_tool_arguments_are_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="call_X") as exc:
        to_wire(req(Message("assistant", None, tool_calls=[ToolCall("call_X", "f", "[1]")])),
                make_dep("http://127.0.0.1:1"))
    assert_clean(exc.value)


# --- non-stream responses -----------------------------------------------------------------------

async def test_response_mapping(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = json_answer(answer(
        candidate({"text": "pondering", "thought": True}, {"text": "Checking "}, {"text": "now."},
                  {"functionCall": {"name": "get_weather", "args": {"city": "Rome", "days": 2}}},
                  {"functionCall": {"name": "get_time", "args": {}}}),
        usage={"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 50,
               "cachedContentTokenCount": 64, "totalTokenCount": 170},
        modelVersion="gemini-test-flash-001", responseId="resp-123"))
    resp = await provider.complete(req(), make_dep(upstream.url))
    assert resp.id == "resp-123" and resp.model == "gemini-test-flash-001"
    assert resp.text == "Checking now."
    calls = resp.tool_calls
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id
    assert orjson.loads(calls[0].arguments) == {"city": "Rome", "days": 2}
    assert calls[1].arguments == "{}"
    assert resp.choices[0].finish_reason == "tool_calls"
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_input_tokens) == (100, 70, 50, 64)
    assert resp.openai_body is None


async def test_response_without_ids_and_several_candidates(upstream: FakeGemini,
                                                           provider: GeminiProvider) -> None:
    upstream.handler = json_answer(answer(candidate({"text": "two"}, index=1, finish="MAX_TOKENS"),
                                          candidate({"text": "one"}, index=0)))
    resp = await provider.complete(req(n=2), make_dep(upstream.url))
    assert resp.model == MODEL and resp.id
    assert [(c.index, c.message.text(), c.finish_reason) for c in resp.choices] == [
        (0, "one", "stop"), (1, "two", "length")]


@pytest.mark.parametrize(("reason", "finish"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("OTHER", "stop"),
])
async def test_finish_reasons(upstream: FakeGemini, provider: GeminiProvider, reason: str, finish: str) -> None:
    upstream.handler = json_answer(answer(candidate({"text": "x"}, finish=reason)))
    resp = await provider.complete(req(), make_dep(upstream.url))
    assert resp.choices[0].finish_reason == finish


async def test_blocked_prompt_is_content_policy(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = json_answer({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                                    "usageMetadata": {"promptTokenCount": 8}})
    with pytest.raises(ContentPolicy, match="SAFETY") as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert_clean(exc.value)


async def test_thought_signature_round_trips_through_the_call_id(upstream: FakeGemini,
                                                                 provider: GeminiProvider) -> None:
    upstream.handler = json_answer(answer(candidate(
        {"functionCall": {"name": "lookup", "args": {"q": "x"}}, "thoughtSignature": "c2lnbmF0dXJl+/="})))
    dep = make_dep(upstream.url)
    resp = await provider.complete(req(), dep)
    [call] = resp.tool_calls
    await provider.complete(req(Message("user", "hi"), Message("assistant", None, tool_calls=[call]),
                                Message("tool", "found", tool_call_id=call.id)), dep)
    model_turn, result_turn = upstream.seen[-1].json["contents"][1:]
    assert model_turn == {"role": "model", "parts": [
        {"functionCall": {"name": "lookup", "args": {"q": "x"}}, "thoughtSignature": "c2lnbmF0dXJl+/="}]}
    assert result_turn["parts"] == [{"functionResponse": {"name": "lookup", "response": {"content": "found"}}}]


async def test_lazy_session_without_start(upstream: FakeGemini) -> None:
    upstream.handler = json_answer(answer(candidate({"text": "lazy"})))
    p = GeminiProvider()
    try:
        assert (await p.complete(req(), make_dep(upstream.url))).text == "lazy"
    finally:
        await p.close()


# --- streams ------------------------------------------------------------------------------------

async def test_stream_full_sequence(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = sse_answer(sse(stream_fragments()), piece=5)
    chunks = await collect(provider.stream(req(stream=True), make_dep(upstream.url)))

    seen = upstream.seen[-1]
    assert seen.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert seen.query == {"alt": "sse"}
    assert seen.headers["x-goog-api-key"] == KEY
    assert "stream" not in seen.json
    assert all(c.id == "resp-stream-1" and c.model == "gemini-test-flash-001" for c in chunks)
    assert all(c.openai_sse is None for c in chunks)
    assert chunks[0].role == "assistant" and all(c.role is None for c in chunks[1:])
    assert "".join(c.text or "" for c in chunks) == "Let me check."
    deltas = [d for c in chunks for d in c.tool_calls or ()]
    assert [(d.index, d.name) for d in deltas] == [(0, "get_weather"), (1, "get_time")]
    assert all(d.id and d.id.startswith("call_") for d in deltas)
    assert orjson.loads(deltas[0].arguments) == {"city": "Paris"} and deltas[1].arguments == "{}"
    assert all(c.usage is None and c.finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason == "tool_calls" and last.text is None and last.usage is not None
    u = last.usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_input_tokens) == (40, 42, 30, 16)


async def test_stream_text_with_finish_in_last_fragment(upstream: FakeGemini, provider: GeminiProvider) -> None:
    fragments = [answer(candidate({"text": "Hel"}, finish=None), usage={"promptTokenCount": 5}),
                 answer(candidate({"text": "lo"}, finish="MAX_TOKENS"),
                        usage={"promptTokenCount": 5, "candidatesTokenCount": 2})]
    upstream.handler = sse_answer(sse(fragments), piece=2)
    chunks = await collect(provider.stream(req(), make_dep(upstream.url)))
    assert [c.text for c in chunks] == ["Hel", "lo", None]
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert len({c.id for c in chunks}) == 1 and chunks[0].model == MODEL


async def test_stream_refusal_raises_before_any_chunk(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = error_answer(429, "RESOURCE_EXHAUSTED", "Quota exceeded for metric", details=[
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}])
    it = provider.stream(req(), make_dep(upstream.url))
    with pytest.raises(RateLimited) as exc:
        await it.__anext__()
    assert exc.value.retry_after == 7
    assert_clean(exc.value)


async def test_stream_error_mid_stream(upstream: FakeGemini, provider: GeminiProvider) -> None:
    payload = sse(stream_fragments()[:1]) + sse([{"error": {"code": 503, "message": "The model is overloaded.",
                                                            "status": "UNAVAILABLE"}}])
    upstream.handler = sse_answer(payload)
    got: list[StreamChunk] = []
    with pytest.raises(Unavailable, match="overloaded") as exc:
        async for c in provider.stream(req(), make_dep(upstream.url)):
            got.append(c)
    assert [c.text for c in got] == ["Let me "]
    assert_clean(exc.value)


async def test_stream_ending_without_finish(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = sse_answer(sse(stream_fragments()[:2]))
    got: list[StreamChunk] = []
    with pytest.raises(ConnectionFailed, match="finish") as exc:
        async for c in provider.stream(req(), make_dep(upstream.url)):
            got.append(c)
    assert "".join(c.text or "" for c in got) == "Let me check."
    assert_clean(exc.value)


async def test_stream_blocked_prompt(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = sse_answer(sse([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}]))
    it = provider.stream(req(), make_dep(upstream.url))
    with pytest.raises(ContentPolicy) as exc:
        await it.__anext__()
    assert_clean(exc.value)


async def test_stream_non_json_event(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = sse_answer(sse(stream_fragments()[:1]) + b"data: {broken\r\n\r\n")
    with pytest.raises(ConnectionFailed) as exc:
        await collect(provider.stream(req(), make_dep(upstream.url)))
    assert_clean(exc.value)


@pytest.mark.parametrize("bad", [
    {"candidates": ["text"]}, {"candidates": [{"content": "text"}]},
    {"candidates": [candidate({"text": "x"})], "usageMetadata": {"promptTokenCount": "many"}},
    {"candidates": [candidate({"text": "x"})], "usageMetadata": {"candidatesTokenCount": 2.5}},
])
async def test_stream_malformed_event_is_a_connection_failure(upstream: FakeGemini, provider: GeminiProvider,
                                                              bad: dict[str, Any]) -> None:
    upstream.handler = sse_answer(sse([*stream_fragments()[:1], bad]))
    with pytest.raises(ConnectionFailed, match="malformed") as exc:
        await collect(provider.stream(req(), make_dep(upstream.url)))
    assert_clean(exc.value)


async def test_early_stop_releases_upstream(upstream: FakeGemini, provider: GeminiProvider) -> None:
    async def hang() -> None:
        await asyncio.wait_for(upstream.release.wait(), 5)

    upstream.handler = sse_answer(sse(stream_fragments()[:1]), then=hang)
    dep = make_dep(upstream.url)
    async with aclosing(provider.stream(req(), dep)) as it:
        async for chunk in it:
            assert chunk.text == "Let me "
            break
    await asyncio.wait_for(upstream.disconnected.wait(), 2)

    upstream.handler = json_answer(answer(candidate({"text": "again"})))
    assert (await provider.complete(req(), dep)).text == "again"


async def test_cancelled_consumer_releases_upstream(upstream: FakeGemini, provider: GeminiProvider) -> None:
    async def hang() -> None:
        await asyncio.wait_for(upstream.release.wait(), 5)

    upstream.handler = sse_answer(sse(stream_fragments()[:1]), then=hang)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(req(), make_dep(upstream.url)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(upstream.disconnected.wait(), 2)


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "status", "message", "details", "cls"), [
    (400, "INVALID_ARGUMENT",
     "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", None,
     ContextWindowExceeded),
    (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
     [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}], UpstreamAuth),
    (400, "INVALID_ARGUMENT", "Invalid value at 'generation_config.temperature'", None, BadRequest),
    (401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None, UpstreamAuth),
    (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.", None, UpstreamAuth),
    (404, "NOT_FOUND", "models/gemini-nope is not found for API version v1beta", None, NotFound),
    (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", None, Unavailable),
    (500, "INTERNAL", "An internal error has occurred.", None, Unavailable),
])
async def test_error_bodies(upstream: FakeGemini, provider: GeminiProvider, code: int, status: str,
                            message: str, details: list[Any] | None, cls: type[ModelyardError]) -> None:
    upstream.handler = error_answer(code, status, message, details)
    with pytest.raises(cls) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert type(exc.value) is cls
    # the gateway's own credentials refused: a 502 of ours, quoting nothing the upstream said
    assert (message not in str(exc.value)) if cls is UpstreamAuth else (message in str(exc.value))
    assert exc.value.upstream_status == code
    assert_clean(exc.value)


async def test_rate_limited_with_retry_after_header(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = error_answer(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted",
                                    headers={"retry-after": "3"})
    with pytest.raises(RateLimited) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert exc.value.retry_after == 3
    assert_clean(exc.value)


async def test_rate_limited_with_retry_info(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = error_answer(429, "RESOURCE_EXHAUSTED", "Quota exceeded", details=[
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}])
    with pytest.raises(RateLimited) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert exc.value.retry_after == 12.5


async def test_error_wrapped_in_a_list(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = json_answer([{"error": {"code": 429, "message": "Resource exhausted.",
                                               "status": "RESOURCE_EXHAUSTED"}}], status=429)
    with pytest.raises(RateLimited) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert_clean(exc.value)


async def test_unavailable_without_json_body(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = raw_answer(b"<html>Service Unavailable</html>", status=503, content_type="text/html")
    with pytest.raises(Unavailable, match="answered 503") as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert_clean(exc.value)
    assert "Service Unavailable" not in exc.value.message and "html" not in exc.value.message


async def test_key_echoed_by_upstream_is_redacted(upstream: FakeGemini, provider: GeminiProvider) -> None:
    upstream.handler = error_answer(400, "INVALID_ARGUMENT", f"bad value {KEY}")
    with pytest.raises(BadRequest) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert "[redacted]" in str(exc.value)
    assert_clean(exc.value)


@pytest.mark.parametrize("body", [b"<html>ok</html>", b'"just a string"', b'{"candidates": []}'])
async def test_invalid_200_body(upstream: FakeGemini, provider: GeminiProvider, body: bytes) -> None:
    upstream.handler = raw_answer(body)
    with pytest.raises(ConnectionFailed) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert_clean(exc.value)


async def test_connection_refused(provider: GeminiProvider) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dep = make_dep(f"http://127.0.0.1:{port}/v1beta")
    with pytest.raises(ConnectionFailed) as exc:
        await provider.complete(req(), dep)
    assert_clean(exc.value)
    with pytest.raises(ConnectionFailed):
        await collect(provider.stream(req(), dep))


async def test_timeout(upstream: FakeGemini, provider: GeminiProvider) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(upstream.release.wait(), 5)
        return web.Response(body=b"{}")

    upstream.handler = slow
    with pytest.raises(Timeout) as exc:
        await provider.complete(req(), make_dep(upstream.url, timeout_s=0.3))
    assert_clean(exc.value)


async def test_timeout_mid_stream(upstream: FakeGemini, provider: GeminiProvider) -> None:
    async def hang() -> None:
        await asyncio.wait_for(upstream.release.wait(), 5)

    upstream.handler = sse_answer(sse(stream_fragments()[:1]), then=hang)
    got: list[StreamChunk] = []
    with pytest.raises(Timeout) as exc:
        async for c in provider.stream(req(), make_dep(upstream.url, timeout_s=0.4)):
            got.append(c)
    assert [c.text for c in got] == ["Let me "]
    assert_clean(exc.value)
