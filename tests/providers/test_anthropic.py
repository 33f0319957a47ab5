"""AnthropicProvider against a real aiohttp.web server on loopback speaking the Messages API.

Each test scripts the fake upstream's answer; the fake records every request it saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
    ContextWindowExceeded,
    ModelyardError,
    NotFound,
    RateLimited,
    Timeout,
    Unavailable,
    UpstreamAuth,
)
from modelyard.providers.anthropic import AnthropicProvider, to_wire, tool_choice_of
from modelyard.types import ChatRequest, ImagePart, Message, StreamChunk, TextPart, Tool, ToolCall

pytestmark = pytest.mark.usefixtures("each_client")  # once per upstream client (tests/conftest.py)

KEY = "sk-ant-test-SECRET-0123456789abcdef"
DEP = "claude-dep"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    path: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass
class FakeAnthropic:
    """A scripted upstream: set `handler`, read `seen`; `disconnected` is set when a client leaves."""

    url: str = ""
    handler: Handler | None = None
    seen: list[Seen] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.path, CIMultiDict(request.headers), await request.read()))
        assert self.handler is not None, "test did not script the upstream"
        try:
            return await self.handler(request)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise


@pytest.fixture
async def upstream() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.2, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
async def provider() -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider()
    await p.start()
    yield p
    await p.close()


def make_dep(api_base: str, **kw: Any) -> Deployment:
    kw.setdefault("model", "claude-test-1")
    kw.setdefault("api_key", KEY)
    card = kw.pop("card", None) or unknown_card(DEP, "anthropic")
    dep = Deployment(name=kw.pop("name", DEP), provider="anthropic", card=card, api_base=api_base, **kw)
    AnthropicProvider().prepare(dep)
    return dep


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="public", messages=list(messages) or [Message("user", "hi")], **kw)


def message_body(content: list[dict[str, Any]], stop_reason: str = "end_turn",
                 usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "msg_01ABC", "type": "message", "role": "assistant", "model": "claude-test-1-20250101",
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": usage or {"input_tokens": 12, "output_tokens": 3}}


def json_answer(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(doc), status=status, headers=headers,
                            content_type="application/json")
    return handle


def raw_answer(body: bytes, status: int = 200, content_type: str = "application/json") -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type=content_type)
    return handle


def error_answer(status: int, etype: str, message: str, headers: dict[str, str] | None = None) -> Handler:
    return json_answer({"type": "error", "error": {"type": etype, "message": message}}, status, headers)


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
                    for e in events)


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


def json_delta(index: int, partial: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": partial}}


def full_stream() -> list[dict[str, Any]]:
    """A complete Messages stream: text, then a tool call whose JSON arrives in pieces."""
    return [
        {"type": "message_start", "message": {
            "id": "msg_stream1", "type": "message", "role": "assistant", "model": "claude-test-1-20250101",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 30, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
                      "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}},
        json_delta(1, ""),
        json_delta(1, "{\"city\": \"Par"),
        json_delta(1, "is\"}"),
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}},
        json_delta(2, "{}"),
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 42}},
        {"type": "ping"},
        {"type": "message_stop"},
    ]


async def collect(it: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [c async for c in it]


def assert_clean(err: ModelyardError) -> None:
    """Every error names the deployment and never carries the key."""
    assert DEP in str(err)
    assert KEY not in str(err) and KEY not in repr(err)
    assert err.deployment == DEP


# --- request shape ------------------------------------------------------------------------------

async def test_request_shape_and_headers(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    upstream.handler = json_answer(message_body([{"type": "text", "text": "ok"}]))
    dep = make_dep(upstream.url, headers={"anthropic-beta": "tools-2024"})
    request = req(
        Message("system", "You are terse."),
        Message("developer", "Answer in English."),
        Message("user", "first"),
        Message("user", [TextPart("look:"), ImagePart(f"data:image/png;base64,{PNG}"),
                         ImagePart("https://example.com/cat.jpg")]),
        Message("assistant", "", tool_calls=[ToolCall("toolu_A", "get_weather", '{"city":"Oslo"}'),
                                             ToolCall("toolu_B", "get_time", "")]),
        Message("tool", '{"temp": 3}', tool_call_id="toolu_A"),
        Message("tool", "12:00", tool_call_id="toolu_B"),
        Message("user", "and tomorrow?"),
        tools=[Tool("get_weather", "Weather by city",
                    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
               Tool("get_time")],
        tool_choice="required", temperature=0.3, top_p=0.9, stop=["END"], user="user-42",
    )
    resp = await provider.complete(request, dep)
    assert resp.text == "ok"

    seen = upstream.seen[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["anthropic-beta"] == "tools-2024"
    body = seen.json
    assert body["model"] == "claude-test-1"
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["max_tokens"] == 4096
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert "stream" not in body
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather by city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    first, assistant, results = body["messages"]
    assert first["content"] == [
        {"type": "text", "text": "first"},
        {"type": "text", "text": "look:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert assistant["content"] == [
        {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_B", "name": "get_time", "input": {}},
    ]
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_A", "content": '{"temp": 3}'},
        {"type": "tool_result", "tool_use_id": "toolu_B", "content": "12:00"},
        {"type": "text", "text": "and tomorrow?"},
    ]


async def test_lone_text_stays_a_string_and_max_tokens_follows_card(
        upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    upstream.handler = json_answer(message_body([{"type": "text", "text": "ok"}]))
    small = dataclasses.replace(unknown_card(DEP, "anthropic"), max_output=1024)
    await provider.complete(req(Message("user", "hi"), Message("assistant", "hello"), Message("user", "bye")),
                            make_dep(upstream.url, card=small))
    body = upstream.seen[-1].json
    assert body["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                {"role": "user", "content": "bye"}]
    assert body["max_tokens"] == 1024
    assert "system" not in body and "tools" not in body and "tool_choice" not in body

    await provider.complete(req(max_tokens=77), make_dep(upstream.url, card=small))
    assert upstream.seen[-1].json["max_tokens"] == 77


@pytest.mark.parametrize("api_base", ["{url}", "{url}/", "{url}/v1", "{url}/v1/"])
async def test_api_base_with_or_without_v1(upstream: FakeAnthropic, provider: AnthropicProvider,
                                           api_base: str) -> None:
    upstream.handler = json_answer(message_body([{"type": "text", "text": "ok"}]))
    dep = make_dep(api_base.format(url=upstream.url), api_version="2099-01-01")
    assert (await provider.complete(req(), dep)).text == "ok"
    assert upstream.seen[-1].path == "/v1/messages"
    assert upstream.seen[-1].headers["anthropic-version"] == "2099-01-01"


def test_default_endpoint() -> None:
    dep = Deployment(name=DEP, provider="anthropic", model="claude-x", card=unknown_card(DEP, "anthropic"),
                     api_key=KEY)
    AnthropicProvider().prepare(dep)
    assert dep.endpoint.url == "https://api.anthropic.com/v1/messages"
    assert dep.endpoint.timeout.total_seconds() == 600.0 and dep.connect_timeout_s == 10.0


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"name": "get_time"}, {"type": "tool", "name": "get_time"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"}),
])
def test_tool_choice_mapping(choice: Any, wire: dict[str, Any]) -> None:
    assert tool_choice_of(choice) == wire
    dep = make_dep("http://127.0.0.1:1")
    assert to_wire(req(tools=[Tool("get_time")], tool_choice=choice), dep)["tool_choice"] == wire


def test_parallel_tool_calls_false_disables_parallel_use() -> None:
    dep = make_dep("http://127.0.0.1:1")
    body = to_wire(req(tools=[Tool("t")], extra={"parallel_tool_calls": False}), dep)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


async def test_json_mode_goes_into_system_prompt(upstream: FakeAnthropic,
        provider: AnthropicProvider) -> None:
    upstream.handler = json_answer(message_body([{"type": "text", "text": "{}"}]))
    dep = make_dep(upstream.url)
    await provider.complete(req(Message("user", "list"), response_format={"type": "json_object"}), dep)
    system = upstream.seen[-1].json["system"]
    assert "JSON object" in system

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    await provider.complete(req(Message("system", "Be exact."), Message("user", "count"),
                                response_format={"type": "json_schema",
                                                 "json_schema": {"name": "count", "schema": schema}}), dep)
    system = upstream.seen[-1].json["system"]
    assert system.startswith("Be exact.\n\n")
    assert "JSON object" in system and orjson.dumps(schema).decode() in system
    assert "response_format" not in upstream.seen[-1].json


def test_bad_tool_arguments_are_a_bad_request() -> None:
    dep = make_dep("http://127.0.0.1:1")
    with pytest.raises(BadRequest, match="toolu_X") as exc:
        to_wire(req(Message("assistant", None, tool_calls=[ToolCall("toolu_X", "f", "{not json")])), dep)
    assert_clean(exc.value)


# --- non-stream responses -----------------------------------------------------------------------

async def test_response_mapping_text_tools_usage(upstream: FakeAnthropic,
        provider: AnthropicProvider) -> None:
    upstream.handler = json_answer(message_body(
        [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
         {"type": "text", "text": "Checking "}, {"type": "text", "text": "now."},
         {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome", "days": 2}}],
        stop_reason="tool_use",
        usage={"input_tokens": 20, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 7,
               "output_tokens": 55}))
    resp = await provider.complete(req(), make_dep(upstream.url))
    assert resp.id == "msg_01ABC"
    assert resp.model == "claude-test-1-20250101"
    assert resp.text == "Checking now."
    [call] = resp.tool_calls
    assert (call.id, call.name) == ("toolu_9", "get_weather")
    assert orjson.loads(call.arguments) == {"city": "Rome", "days": 2}
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.usage.input_tokens == 327
    assert resp.usage.cached_input_tokens == 300
    assert resp.usage.output_tokens == 55
    assert resp.openai_body is None


async def test_tool_only_answer_has_null_content(upstream: FakeAnthropic,
        provider: AnthropicProvider) -> None:
    upstream.handler = json_answer(message_body(
        [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}], stop_reason="tool_use"))
    resp = await provider.complete(req(), make_dep(upstream.url))
    assert resp.choices[0].message.content is None
    assert resp.tool_calls[0].arguments == "{}"


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
async def test_finish_reasons(upstream: FakeAnthropic, provider: AnthropicProvider,
                              stop_reason: str, finish: str) -> None:
    upstream.handler = json_answer(message_body([{"type": "text", "text": "x"}], stop_reason=stop_reason))
    resp = await provider.complete(req(), make_dep(upstream.url))
    assert resp.choices[0].finish_reason == finish


async def test_lazy_session_without_start(upstream: FakeAnthropic) -> None:
    upstream.handler = json_answer(message_body([{"type": "text", "text": "lazy"}]))
    p = AnthropicProvider()
    try:
        assert (await p.complete(req(), make_dep(upstream.url))).text == "lazy"
    finally:
        await p.close()


# --- streams ------------------------------------------------------------------------------------

async def test_stream_full_sequence(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    upstream.handler = sse_answer(sse(full_stream()), piece=5)
    chunks = await collect(provider.stream(req(stream=True), make_dep(upstream.url)))

    assert upstream.seen[-1].json["stream"] is True
    assert all(c.id == "msg_stream1" and c.model == "claude-test-1-20250101" for c in chunks)
    assert all(c.openai_sse is None for c in chunks)
    assert chunks[0].role == "assistant" and all(c.role is None for c in chunks[1:])
    assert "".join(c.text or "" for c in chunks) == "Let me check."
    deltas = [d for c in chunks for d in c.tool_calls or ()]
    starts = [d for d in deltas if d.id]
    assert [(d.index, d.id, d.name) for d in starts] == [(0, "toolu_01", "get_weather"),
                                                          (1, "toolu_02", "get_time")]
    args = {i: "".join(d.arguments for d in deltas if d.index == i) for i in (0, 1)}
    assert orjson.loads(args[0]) == {"city": "Paris"} and orjson.loads(args[1]) == {}
    assert all(c.usage is None and c.finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason == "tool_calls" and last.text is None
    assert last.usage is not None
    assert last.last and not any(c.last for c in chunks[:-1])  # message_stop: the server may end the answer
    u = last.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (135, 100, 42)


async def test_stream_text_only_stop(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    events = [e for e in full_stream() if e.get("index", 0) == 0 and e["type"] != "message_delta"]
    events.insert(-1, {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": {"output_tokens": 4, "input_tokens": 31, "cache_read_input_tokens": 100}})
    upstream.handler = sse_answer(sse(events), piece=3)
    chunks = await collect(provider.stream(req(), make_dep(upstream.url)))
    assert "".join(c.text or "" for c in chunks) == "Let me check."
    assert not any(c.tool_calls for c in chunks)
    assert chunks[-1].finish_reason == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (136, 100, 4)


async def test_stream_refusal_raises_before_any_chunk(upstream: FakeAnthropic,
                                                      provider: AnthropicProvider) -> None:
    upstream.handler = error_answer(429, "rate_limit_error", "request tokens exceeded your rate limit",
                                    headers={"retry-after": "17"})
    it = provider.stream(req(), make_dep(upstream.url))
    with pytest.raises(RateLimited) as exc:
        await it.__anext__()
    assert exc.value.retry_after == 17
    assert_clean(exc.value)


async def test_stream_error_event_mid_stream(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    events = [*full_stream()[:5], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    upstream.handler = sse_answer(sse(events))
    got: list[StreamChunk] = []
    with pytest.raises(Unavailable) as exc:
        async for c in provider.stream(req(), make_dep(upstream.url)):
            got.append(c)
    assert "".join(c.text or "" for c in got) == "Let me check."
    assert "Overloaded" in str(exc.value)
    assert_clean(exc.value)


async def test_stream_error_event_rate_limit(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    events = [*full_stream()[:1], {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}]
    upstream.handler = sse_answer(sse(events))
    with pytest.raises(RateLimited):
        await collect(provider.stream(req(), make_dep(upstream.url)))


async def test_stream_ending_without_message_stop(upstream: FakeAnthropic,
        provider: AnthropicProvider) -> None:
    upstream.handler = sse_answer(sse(full_stream()[:6]))
    got: list[StreamChunk] = []
    with pytest.raises(ConnectionFailed, match="message_stop") as exc:
        async for c in provider.stream(req(), make_dep(upstream.url)):
            got.append(c)
    assert "".join(c.text or "" for c in got) == "Let me check."
    assert_clean(exc.value)


async def test_stream_non_json_event(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    upstream.handler = sse_answer(sse(full_stream()[:1]) + b"event: content_block_delta\ndata: {oops\n\n")
    with pytest.raises(ConnectionFailed) as exc:
        await collect(provider.stream(req(), make_dep(upstream.url)))
    assert_clean(exc.value)


@pytest.mark.parametrize("bad", [
    {"type": "content_block_delta", "index": 0, "delta": "text"},
    {"type": "content_block_start", "index": 0, "content_block": ["tool_use"]},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": "many"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": -1}},
])
async def test_stream_malformed_event_is_a_connection_failure(upstream: FakeAnthropic, provider: AnthropicProvider,
                                                              bad: dict[str, Any]) -> None:
    # a field of the wrong type ends the stream with an error naming the deployment, never an internal error
    events = full_stream()
    upstream.handler = sse_answer(sse([*events[:-2], bad, *events[-2:]]))
    with pytest.raises(ConnectionFailed, match="malformed") as exc:
        await collect(provider.stream(req(), make_dep(upstream.url)))
    assert_clean(exc.value)


async def test_early_stop_releases_upstream(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    async def hang() -> None:
        await asyncio.wait_for(upstream.release.wait(), 5)

    upstream.handler = sse_answer(sse(full_stream()[:4]), then=hang)
    dep = make_dep(upstream.url)
    async with aclosing(provider.stream(req(), dep)) as it:
        async for chunk in it:
            assert chunk.text == "Let me "
            break
    await asyncio.wait_for(upstream.disconnected.wait(), 2)

    # the pool is still usable afterwards
    upstream.handler = json_answer(message_body([{"type": "text", "text": "again"}]))
    assert (await provider.complete(req(), dep)).text == "again"


async def test_cancelled_consumer_releases_upstream(upstream: FakeAnthropic,
        provider: AnthropicProvider) -> None:
    async def hang() -> None:
        await asyncio.wait_for(upstream.release.wait(), 5)

    upstream.handler = sse_answer(sse(full_stream()[:4]), then=hang)
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

@pytest.mark.parametrize(("status", "etype", "message", "cls"), [
    (529, "overloaded_error", "Overloaded", Unavailable),
    (500, "api_error", "Internal server error", Unavailable),
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum",
     ContextWindowExceeded),
    (400, "invalid_request_error",
     "input length and `max_tokens` exceed context limit: 199000 + 8192 > 200000", ContextWindowExceeded),
    (400, "invalid_request_error", "messages: roles must alternate", BadRequest),
    (401, "authentication_error", "invalid x-api-key", UpstreamAuth),
    (403, "permission_error", "Your API key does not have permission to use the specified resource.",
     UpstreamAuth),
    (404, "not_found_error", "model: claude-nope", NotFound),
])
async def test_error_bodies(upstream: FakeAnthropic, provider: AnthropicProvider, status: int, etype: str,
                            message: str, cls: type[ModelyardError]) -> None:
    upstream.handler = error_answer(status, etype, message)
    with pytest.raises(cls) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert type(exc.value) is cls
    # the gateway's own credentials refused: a 502 of ours, quoting nothing the upstream said
    assert (message not in str(exc.value)) if cls is UpstreamAuth else (message in str(exc.value))
    assert exc.value.upstream_status == status
    assert_clean(exc.value)


async def test_rate_limited_with_retry_after(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    upstream.handler = error_answer(429, "rate_limit_error", "rate limited", headers={"retry-after": "12"})
    with pytest.raises(RateLimited) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert exc.value.retry_after == 12
    assert_clean(exc.value)


async def test_overloaded_status_without_body(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    upstream.handler = raw_answer(b"<html>upstream overloaded</html>", status=529, content_type="text/html")
    with pytest.raises(Unavailable) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert_clean(exc.value)


async def test_key_echoed_by_upstream_is_redacted(upstream: FakeAnthropic,
        provider: AnthropicProvider) -> None:
    upstream.handler = error_answer(400, "invalid_request_error", f"invalid x-api-key: {KEY}")
    with pytest.raises(BadRequest) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert "[redacted]" in str(exc.value)
    assert_clean(exc.value)


@pytest.mark.parametrize("body", [b"not json at all", b"[1, 2]", b'{"id": "msg_1", "type": "message"}'])
async def test_invalid_200_body(upstream: FakeAnthropic, provider: AnthropicProvider, body: bytes) -> None:
    upstream.handler = raw_answer(body)
    with pytest.raises(ConnectionFailed) as exc:
        await provider.complete(req(), make_dep(upstream.url))
    assert_clean(exc.value)


async def test_connection_refused(provider: AnthropicProvider) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dep = make_dep(f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectionFailed) as exc:
        await provider.complete(req(), dep)
    assert_clean(exc.value)
    with pytest.raises(ConnectionFailed):
        await collect(provider.stream(req(), dep))


async def test_timeout(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(upstream.release.wait(), 5)
        return web.Response(body=b"{}")

    upstream.handler = slow
    dep = make_dep(upstream.url, timeout_s=0.3)
    with pytest.raises(Timeout) as exc:
        await provider.complete(req(), dep)
    assert_clean(exc.value)


async def test_timeout_mid_stream(upstream: FakeAnthropic, provider: AnthropicProvider) -> None:
    async def hang() -> None:
        await asyncio.wait_for(upstream.release.wait(), 5)

    upstream.handler = sse_answer(sse(full_stream()[:4]), then=hang)
    got: list[StreamChunk] = []
    with pytest.raises(Timeout) as exc:
        async for c in provider.stream(req(), make_dep(upstream.url, timeout_s=0.4)):
            got.append(c)
    assert [c.text for c in got] == ["Let me "]
    assert_clean(exc.value)
