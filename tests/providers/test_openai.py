"""OpenAIProvider against a real aiohttp.web server on loopback speaking the chat-completions protocol.

Each test scripts the fake upstream's answer; the fake records every request it saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from modelyard.catalog import ModelCard, unknown_card
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
from modelyard.providers.openai import OpenAIProvider, from_wire, merge_read, to_wire
from modelyard.types import (
    ChatRequest,
    ImagePart,
    Message,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
)

pytestmark = pytest.mark.usefixtures("each_client")  # once per upstream client (tests/conftest.py)

KEY = "sk-test-SECRET-0123456789abcdef"
DEP = "fake-dep"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    peer: Any

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass
class FakeOpenAI:
    """A scripted upstream: set `handler`, read `seen`."""

    url: str = ""
    handler: Handler | None = None
    seen: list[Seen] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.query), CIMultiDict(request.headers), body,
                              request.transport.get_extra_info("peername") if request.transport else None))
        assert self.handler is not None, "test did not script the upstream"
        return await self.handler(request)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.2, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIProvider]:
    p = OpenAIProvider()
    await p.start()
    yield p
    await p.close()


def make_dep(api_base: str, adapter: OpenAIProvider | None = None, **kw: Any) -> Deployment:
    kw.setdefault("model", "gpt-4o-mini")
    kw.setdefault("api_key", KEY)
    dep = Deployment(name=kw.pop("name", DEP), provider=kw.pop("provider", "openai"),
                     card=unknown_card(kw["model"], "openai"), api_base=api_base, **kw)
    (adapter or OpenAIProvider()).prepare(dep)
    return dep


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="public", messages=list(messages) or [Message("user", "hi")], **kw)


def json_answer(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(doc), status=status, headers=headers,
                            content_type="application/json")
    return handle


def raw_answer(body: bytes, status: int = 200, content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type=content_type, headers=headers)
    return handle


def sse(*payloads: Any, done: bool = True) -> list[bytes]:
    events = [b"data: " + (p if isinstance(p, bytes) else orjson.dumps(p)) + b"\n\n" for p in payloads]
    if done:
        events.append(b"data: [DONE]\n\n")
    return events


def sse_answer(pieces: list[bytes], pause: float = 0.0, then: Callable[[web.Request], Awaitable[None]]
               | None = None) -> Handler:
    """Write `pieces` as separate TCP writes (optionally pausing between them)."""
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for piece in pieces:
            await resp.write(piece)
            if pause:
                await asyncio.sleep(pause)
        if then is not None:
            await then(request)
        await resp.write_eof()
        return resp
    return handle


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000001,
                           "model": "gpt-4o-mini-2024-07-18",
                           "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    doc.update(extra)
    return doc


async def collect(it: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [c async for c in it]


def assert_clean(err: ModelyardError, status_text: str | None = None) -> None:
    """Every error names the deployment and never carries the key."""
    assert DEP in err.message
    assert KEY not in str(err) and KEY not in repr(err) and KEY not in err.message
    assert err.deployment == DEP
    if status_text:
        assert status_text in err.message


# --- request shape --------------------------------------------------------------------------------

OK_BODY = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


async def test_request_shape_openai(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = json_answer(OK_BODY)
    dep = make_dep(upstream.url + "/v1/", provider, headers={"OpenAI-Organization": "org-1"})
    r = req(
        Message("system", "be brief"),
        Message("user", [TextPart("what is this?"), ImagePart("https://x/cat.png", detail="low"),
                         ImagePart("data:image/png;base64,AAAA")], name="alice"),
        Message("assistant", None, tool_calls=[ToolCall("call_1", "lookup", '{"q": "cat"}')]),
        Message("tool", '{"answer": "a cat"}', tool_call_id="call_1"),
        tools=[Tool("lookup", "Look things up", {"type": "object", "properties": {"q": {"type": "string"}}}),
               Tool("noop")],
        tool_choice={"name": "lookup"},
        response_format={"type": "json_object"},
        temperature=0.2, max_tokens=50, stop=["\n\n"], seed=7, user="u-1", n=2,
        extra={"presence_penalty": 0.5, "logprobs": True},
    )
    await provider.complete(r, dep)

    (seen,) = upstream.seen
    assert seen.method == "POST" and seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["OpenAI-Organization"] == "org-1"
    assert "api-key" not in {k.lower() for k in seen.headers}
    body = seen.json
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "name": "alice", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q": "cat"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"answer": "a cat"}'},
    ]
    assert body["tools"] == [
        {"type": "function", "function": {"name": "lookup", "description": "Look things up",
                                          "parameters": {"type": "object",
                                                         "properties": {"q": {"type": "string"}}}}},
        {"type": "function",
         "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert body["response_format"] == {"type": "json_object"}
    assert (body["temperature"], body["max_tokens"], body["stop"], body["seed"], body["user"], body["n"]) == (
        0.2, 50, ["\n\n"], 7, "u-1", 2)
    assert body["presence_penalty"] == 0.5 and body["logprobs"] is True
    assert "top_p" not in body and "stream" not in body and "stream_options" not in body


async def test_minimal_request_omits_unset_fields(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = json_answer(OK_BODY)
    await provider.complete(req(), make_dep(upstream.url, provider))
    assert upstream.seen[0].path == "/chat/completions"
    assert upstream.seen[0].json == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def test_request_shape_azure(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = json_answer(OK_BODY)
    dep = make_dep(upstream.url, provider, provider="azure", model="my-gpt4o")
    await provider.complete(req(), dep)
    dep2 = make_dep(upstream.url + "/", provider, provider="azure", model="other",
                    api_version="2025-01-01-preview")
    await provider.complete(req(), dep2)

    first, second = upstream.seen
    assert first.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert first.query == {"api-version": "2024-10-21"}
    assert first.headers["api-key"] == KEY
    assert "authorization" not in {k.lower() for k in first.headers}
    assert second.path == "/openai/deployments/other/chat/completions"
    assert second.query == {"api-version": "2025-01-01-preview"}


async def test_no_key_sends_no_auth_header(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = json_answer(OK_BODY)
    await provider.complete(req(), make_dep(upstream.url, provider, api_key=None))
    assert "authorization" not in {k.lower() for k in upstream.seen[0].headers}


async def test_stream_request_always_asks_for_usage(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = sse_answer(sse(chunk({"content": "x"}, "stop")))
    dep = make_dep(upstream.url, provider)
    await collect(provider.stream(req(stream=True, include_usage=False), dep))
    await collect(provider.stream(req(extra={"stream_options": {"continuous_usage_stats": True}}), dep))
    a, b = (s.json for s in upstream.seen)
    assert a["stream"] is True and a["stream_options"] == {"include_usage": True}
    assert b["stream"] is True
    assert b["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    assert upstream.seen[0].headers["Authorization"] == f"Bearer {KEY}"


def test_tool_choice_mapping() -> None:
    dep = make_dep("http://unused")
    assert to_wire(req(tool_choice="required"), dep)["tool_choice"] == "required"
    assert to_wire(req(tool_choice="none"), dep)["tool_choice"] == "none"
    shaped = {"type": "function", "function": {"name": "f"}}
    assert to_wire(req(tool_choice=shaped), dep)["tool_choice"] == shaped
    assert to_wire(req(tool_choice={"name": "g"}), dep)["tool_choice"] == {
        "type": "function", "function": {"name": "g"}}


def test_extra_cannot_turn_a_plain_call_into_a_stream() -> None:
    body = to_wire(req(extra={"stream": True, "top_k": 5}), make_dep("http://unused"))
    assert "stream" not in body and body["top_k"] == 5


def test_reasoning_models_get_max_completion_tokens_on_openai() -> None:
    assert to_wire(req(max_tokens=9), make_dep("", model="o3-mini"))["max_completion_tokens"] == 9
    assert "max_tokens" not in to_wire(req(max_tokens=9), make_dep("", model="gpt-5"))
    # compatible servers keep the classic field
    assert to_wire(req(max_tokens=9), make_dep("http://vllm:8000/v1", model="o3-mini"))["max_tokens"] == 9


async def test_lazy_start_and_close(upstream: FakeOpenAI) -> None:
    upstream.handler = json_answer(OK_BODY)
    p = OpenAIProvider()  # no start()
    dep = make_dep(upstream.url, p)
    assert (await p.complete(req(), dep)).text == "ok"
    await p.close()
    assert (await p.complete(req(), dep)).text == "ok"  # starts again after close
    await p.close()


# --- non-stream response --------------------------------------------------------------------------

# Odd spacing and key order on purpose: a re-serialisation would not reproduce these bytes.
RESPONSE_BYTES = b"""{ "id":"chatcmpl-abc",  "object":"chat.completion", "created":1712345678,
 "model":"gpt-4o-2024-08-06", "system_fingerprint":"fp_123",
 "choices":[
  {"index":0,"message":{"role":"assistant","content":"Hello \xc3\xa9t\xc3\xa9"},
   "finish_reason":"stop","logprobs":null},
  {"index":1,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[
     {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}},
     {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
   "finish_reason":"tool_calls"}],
 "usage":{"prompt_tokens":120,"completion_tokens":40,"total_tokens":160,
   "prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},
   "completion_tokens_details":{"reasoning_tokens":12}} }"""


async def test_response_mapping(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = raw_answer(RESPONSE_BYTES)
    resp = await provider.complete(req(n=2), make_dep(upstream.url, provider))
    assert resp.openai_body == RESPONSE_BYTES
    assert resp.id == "chatcmpl-abc" and resp.model == "gpt-4o-2024-08-06"
    assert resp.created == 1712345678 and resp.system_fingerprint == "fp_123"
    assert resp.text == "Hello été"
    assert [c.finish_reason for c in resp.choices] == ["stop", "tool_calls"]
    second = resp.choices[1]
    assert second.index == 1 and second.message.role == "assistant" and second.message.content is None
    assert second.message.tool_calls == [ToolCall("call_a", "get_weather", '{"city":"Paris"}'),
                                         ToolCall("call_b", "get_time", "{}")]
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens) == (120, 40, 64, 12)


@pytest.mark.parametrize("usage", [None, {"prompt_tokens": 5, "completion_tokens": 3,
                                          "prompt_tokens_details": None, "completion_tokens_details": None}])
async def test_response_tolerates_missing_usage_details(upstream: FakeOpenAI, provider: OpenAIProvider,
                                                        usage: Any) -> None:
    upstream.handler = json_answer({**OK_BODY, "usage": usage})
    u = (await provider.complete(req(), make_dep(upstream.url, provider))).usage
    expected = (0, 0) if usage is None else (5, 3)
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens) == (*expected, 0, 0)


async def test_tool_call_arguments_as_object(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    """Some compatible servers send `arguments` as a JSON object; the neutral type wants the text."""
    message = {"role": "assistant", "content": "",
               "tool_calls": [{"id": "c1", "type": "function",
                               "function": {"name": "f", "arguments": {"a": [1, 2]}}}]}
    upstream.handler = json_answer({**OK_BODY, "choices": [{"index": 0, "message": message,
                                                            "finish_reason": "tool_calls"}]})
    resp = await provider.complete(req(), make_dep(upstream.url, provider))
    assert resp.tool_calls == [ToolCall("c1", "f", '{"a":[1,2]}')]


# --- streaming ------------------------------------------------------------------------------------

STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo é"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "lookup", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
    chunk({}, "tool_calls"),
    {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000001,
     "model": "gpt-4o-mini-2024-07-18", "choices": [],
     "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39,
               "prompt_tokens_details": {"cached_tokens": 10},
               "completion_tokens_details": {"reasoning_tokens": 2}}},
]


def check_stream(chunks: list[StreamChunk]) -> None:
    """Events that arrive together may be merged into one chunk: check what the stream says, not how
    it was cut — text, tool-call deltas in order, the finish reason, usage last, the raw events."""
    assert chunks[0].role == "assistant"
    assert "".join(c.text or "" for c in chunks) == "Hello é"
    assert all(c.id == "chatcmpl-s1" and c.model == "gpt-4o-mini-2024-07-18" for c in chunks)
    assert chunks[0].created == 1700000001
    deltas = [d for c in chunks for d in (c.tool_calls or [])]
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, "call_1", "lookup", ""), (0, None, None, '{"q":'), (0, None, None, '"x"}')]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    assert chunks[-2].finish_reason == "tool_calls" and chunks[-2].usage is None
    last = chunks[-1]
    assert last.usage is not None and last.text is None and last.finish_reason is None
    u = last.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens) == (30, 9, 10, 2)
    raw = b"".join(c.openai_sse or b"" for c in chunks)
    assert [orjson.loads(e.removeprefix(b"data: ")) for e in raw.split(b"\n\n") if e] == STREAM


async def test_stream_mapping(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    pieces = sse(*STREAM)
    upstream.handler = sse_answer(pieces)
    chunks = await collect(provider.stream(req(stream=True), make_dep(upstream.url, provider)))
    check_stream(chunks)
    assert b"".join(c.openai_sse or b"" for c in chunks) == b"".join(pieces[:-1])  # the exact bytes, minus [DONE]


def test_choices_are_built_when_first_read(provider: OpenAIProvider) -> None:
    # the OpenAI-format API forwards the body as it came; choices become objects only if read
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}},
                        {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "B"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    resp = from_wire(orjson.dumps(body), dep)
    assert resp.openai_body == orjson.dumps(body) and resp.usage.input_tokens == 5
    assert resp.tool_calls == [ToolCall(id="c1", name="f", arguments="{}")]
    assert [(c.index, c.finish_reason, c.message.text()) for c in resp.choices] == [(0, "tool_calls", ""),
                                                                                   (1, "stop", "B")]
    assert resp.choices is resp.choices  # built once
    copy = dataclasses.replace(resp, deployment="d")
    assert copy.choices == resp.choices and copy.deployment == "d"
    resp.choices = []
    assert resp.choices == [] and resp.text == ""


@pytest.mark.parametrize("choices", [[1], ["text"], [None]])
def test_a_body_whose_choices_are_not_objects_is_a_connection_failure(provider: OpenAIProvider,
                                                                      choices: list[Any]) -> None:
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    with pytest.raises(ConnectionFailed, match="without choices"):
        from_wire(orjson.dumps({"id": "x", "choices": choices}), dep)


def sse_read(*datas: bytes) -> bytes:
    """One network read of one-line SSE events, as `sse_reads` hands it on (no last blank line)."""
    return b"\n\n".join(b"data: " + d for d in datas)


def test_merge_read_joins_what_arrived_together(provider: OpenAIProvider) -> None:
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    two = chunk({"content": "B"})
    two["choices"][0]["index"] = 1
    events = [chunk({"role": "assistant", "content": "He"}), chunk({"content": "llo"}),
              chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
              chunk({"content": "after the call"}), two, chunk({}, "stop"), STREAM[-1]]
    datas = [orjson.dumps(e) for e in events]
    chunks, error, done = merge_read(sse_read(*datas, b"[DONE]"), dep)
    assert error is None and done
    # text+text+tool | text after a tool call | another choice | back to choice 0 | usage on its own
    assert [(c.index, c.text, bool(c.tool_calls), c.finish_reason) for c in chunks] == [
        (0, "Hello", True, None), (0, "after the call", False, None), (1, "B", False, None),
        (0, None, False, "stop"), (0, None, False, None)]
    assert chunks[0].role == "assistant" and chunks[-1].usage is not None
    assert [c.flush for c in chunks] == [False, False, False, False, True]
    assert b"".join(c.openai_sse or b"" for c in chunks) == b"".join(b"data: " + d + b"\n\n" for d in datas)


def test_merge_read_general_form_gives_the_same_chunks(provider: OpenAIProvider) -> None:
    # comments, `event:` lines, `data:` without its space and a payload over two `data:` lines take
    # the event-by-event path; the chunks are the same, and what is forwarded is valid SSE
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    events = [chunk({"role": "assistant", "content": "He"}), chunk({"content": "llo"}), chunk({}, "stop")]
    fast, _, _ = merge_read(sse_read(*(orjson.dumps(e) for e in events)), dep)
    pretty = orjson.dumps(events[1], option=orjson.OPT_INDENT_2)
    general = (b": keep-alive\n\nevent: chunk\ndata:" + orjson.dumps(events[0]) + b"\n\n"
               + b"\n".join(b"data: " + line for line in pretty.split(b"\n")) + b"\n\n"
               + b"data: " + orjson.dumps(events[2]) + b"\n\ndata: [DONE]")
    slow, error, done = merge_read(general, dep)
    assert error is None and done
    assert [(c.text, c.finish_reason, c.role) for c in slow] == [(c.text, c.finish_reason, c.role) for c in fast]
    forwarded = [e for c in slow for e in (c.openai_sse or b"").split(b"\n\n") if e]
    assert [orjson.loads(b"\n".join(line.removeprefix(b"data: ") for line in e.split(b"\n")))
            for e in forwarded] == events


def test_merge_read_stops_at_an_error_event(provider: OpenAIProvider) -> None:
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    read = sse_read(orjson.dumps(chunk({"content": "so far"})),
                    orjson.dumps({"error": {"message": "The server had an error", "type": "server_error"}}),
                    orjson.dumps(chunk({"content": "never"})))
    chunks, error, done = merge_read(read, dep)
    assert [c.text for c in chunks] == ["so far"] and error is not None and "server had an error" in error.message
    assert not done


@pytest.mark.parametrize("bad", [b"not json", b"[1, 2]", b"5", b""])
def test_merge_read_names_an_event_that_is_not_a_chunk(provider: OpenAIProvider, bad: bytes) -> None:
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    chunks, error, _ = merge_read(sse_read(orjson.dumps(chunk({"content": "ok"})), bad), dep)
    assert [c.text for c in chunks] == ["ok"]
    assert isinstance(error, ConnectionFailed) and "'" + dep.name + "'" in error.message


_MALFORMED_EVENTS = [
    {"choices": "abc"}, {"choices": [{"index": 0, "delta": "text"}]}, chunk({"content": 5}),
    chunk({"tool_calls": [1]}), chunk({"tool_calls": [{"index": 0, "function": "f"}]}), {"choices": [], "usage": [1]},
    {"choices": [], "usage": {"prompt_tokens": "many"}}, {"choices": [], "usage": {"completion_tokens": -3}},
    {"choices": [], "usage": {"prompt_tokens": 1.5}},
]


@pytest.mark.parametrize("bad", _MALFORMED_EVENTS)
def test_a_malformed_chunk_ends_the_stream_with_a_connection_failure(provider: OpenAIProvider,
                                                                      bad: dict[str, Any]) -> None:
    # never an internal error: the chunks before it stand, the event is named
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    chunks, error, _ = merge_read(sse_read(orjson.dumps(chunk({"content": "ok"})), orjson.dumps(bad)), dep)
    assert [c.text for c in chunks] == ["ok"]
    assert isinstance(error, ConnectionFailed) and "malformed" in error.message and dep.name in error.message


def test_usage_counts_as_whole_numbers_pass_and_anything_else_fails(provider: OpenAIProvider) -> None:
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    ok = {"id": "x", "choices": [], "usage": {"prompt_tokens": 5.0, "completion_tokens": 2}}
    assert from_wire(orjson.dumps(ok), dep).usage.input_tokens == 5
    bad = {"id": "x", "choices": [], "usage": {"prompt_tokens": "5"}}
    with pytest.raises(ConnectionFailed, match="malformed usage"):
        from_wire(orjson.dumps(bad), dep)


_EVENT = st.one_of(
    st.builds(lambda t, i: chunk({"content": t}) if not i else {**chunk({"content": t}),
              "choices": [{"index": i, "delta": {"content": t}, "finish_reason": None}]},
              st.text(max_size=6), st.integers(0, 2)),
    st.just(chunk({"role": "assistant", "content": ""})),
    st.builds(lambda n: chunk({"tool_calls": [{"index": 0, "id": f"c{n}", "function": {"name": "f",
                                                                                       "arguments": "{}"}}]}),
              st.integers(0, 9)),
    st.just(chunk({}, "stop")),
    st.just(STREAM[-1]),  # usage, no choices
    st.just({"error": {"message": "boom", "type": "server_error"}}),
    st.just([1, 2]),  # not a chunk
    st.sampled_from(_MALFORMED_EVENTS),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(_EVENT, min_size=1, max_size=12), done=st.booleans())
def test_merge_read_fast_path_matches_the_event_by_event_path(provider: OpenAIProvider, events: list[Any],
                                                              done: bool) -> None:
    # one JSON parse for the read, chunk bytes cut at the chunk boundaries only: the same chunks,
    # the same forwarded bytes and the same error as parsing event by event (a leading comment
    # sends the read down that path)
    dep = make_dep("http://127.0.0.1:9/v1", provider)
    read = sse_read(*(orjson.dumps(e) for e in events), *([b"[DONE]"] if done else []))
    fast = merge_read(read, dep)
    slow = merge_read(b": comment\n\n" + read, dep)

    def shape(result: tuple[list[StreamChunk], Any, bool]) -> Any:
        chunks, error, end = result
        return ([(c.index, c.text, c.role, c.finish_reason, c.usage, c.tool_calls, c.flush, c.openai_sse)
                 for c in chunks], type(error), error and error.message, end)

    assert shape(fast) == shape(slow)


async def test_stream_burst_is_read_together(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    # the whole stream in one write: the adapter reads and merges it in far fewer chunks than events
    events = sse(*[chunk({"content": f"t{i} "}) for i in range(40)], chunk({}, "stop"))
    upstream.handler = sse_answer([b"".join(events)])
    chunks = await collect(provider.stream(req(stream=True), make_dep(upstream.url, provider)))
    assert "".join(c.text or "" for c in chunks) == "".join(f"t{i} " for i in range(40))
    assert len(chunks) < 10


async def test_stream_spaced_events_are_not_held_back(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    # events that arrive apart are handed on one by one, as they come: a read never waits for more
    upstream.handler = sse_answer(sse(*[chunk({"content": f"t{i}"}) for i in range(4)], chunk({}, "stop")), pause=0.05)
    chunks = await collect(provider.stream(req(stream=True), make_dep(upstream.url, provider)))
    assert [(c.text, c.finish_reason) for c in chunks] == [("t0", None), ("t1", None), ("t2", None), ("t3", None),
                                                           (None, "stop")]


async def test_stream_split_across_tcp_writes(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    whole = b": keep-alive comment\n\n" + b"".join(sse(*STREAM)).replace(b"\n\n", b"\r\n\r\n", 2)
    cut = whole.index("é".encode()) + 1  # inside a UTF-8 character
    points = sorted({7, 23, 40, cut, len(whole) // 2, len(whole) - 9, len(whole) - 3})
    pieces = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True)]
    upstream.handler = sse_answer(pieces, pause=0.005)
    check_stream(await collect(provider.stream(req(stream=True), make_dep(upstream.url, provider))))


async def test_stream_without_done_but_finished(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = sse_answer(sse(chunk({"content": "hi"}), chunk({}, "stop"), done=False))
    chunks = await collect(provider.stream(req(stream=True), make_dep(upstream.url, provider)))
    assert [c.finish_reason for c in chunks][-1] == "stop" and "".join(c.text or "" for c in chunks) == "hi"


async def test_connection_reused_after_stream(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    async def pause(request: web.Request) -> None:
        await asyncio.sleep(0.05)  # the end of the body comes after [DONE], in a later TCP segment

    upstream.handler = sse_answer(sse(chunk({"content": "a"}, "stop")), then=pause)
    dep = make_dep(upstream.url, provider)
    for _ in range(3):
        await collect(provider.stream(req(stream=True), dep))
        await asyncio.sleep(0.05)  # the client's pool takes a finished connection back in its own thread
    assert len({s.peer for s in upstream.seen}) == 1


# --- errors ---------------------------------------------------------------------------------------

def openai_error(message: str, etype: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


ERROR_CASES = [
    pytest.param(400, openai_error("This model's maximum context length is 128000 tokens. However, your "
                                   "messages resulted in 130000 tokens.", code="context_length_exceeded",
                                   param="messages"), {}, ContextWindowExceeded, id="context-code"),
    pytest.param(400, openai_error("Input exceeds the context length of the model"), {},
                 ContextWindowExceeded, id="context-message"),
    pytest.param(400, {"error": {"message": "The response was filtered due to the prompt triggering Azure "
                                            "OpenAI's content management policy.", "type": None,
                                 "param": "prompt", "code": "content_filter", "status": 400}}, {},
                 ContentPolicy, id="content-filter"),
    pytest.param(400, openai_error("Your request was rejected by our safety system",
                                   code="content_policy_violation"), {}, ContentPolicy, id="content-policy"),
    pytest.param(400, openai_error("Invalid value for 'temperature'", param="temperature"), {}, BadRequest,
                 id="bad-request"),
    pytest.param(401, openai_error("Incorrect API key provided: sk-test-***cdef.", code="invalid_api_key"),
                 {}, UpstreamAuth, id="401"),
    pytest.param(404, openai_error("The model `gpt-9` does not exist", code="model_not_found"), {}, NotFound,
                 id="404"),
    pytest.param(429, openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
                 {"Retry-After": "7"}, RateLimited, id="429-retry-after"),
    pytest.param(429, openai_error("Rate limit reached for tokens", "tokens", "rate_limit_exceeded"),
                 {"retry-after-ms": "1500", "Retry-After": "2"}, RateLimited, id="429-retry-after-ms"),
    pytest.param(500, openai_error("The server had an error while processing your request.", "server_error"),
                 {}, Unavailable, id="500"),
    pytest.param(503, {"error": "model is loading"}, {}, Unavailable, id="503-ollama-shape"),
]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("status", "doc", "headers", "cls"), ERROR_CASES)
async def test_error_mapping(upstream: FakeOpenAI, provider: OpenAIProvider, mode: str, status: int,
                             doc: dict[str, Any], headers: dict[str, str], cls: type[ModelyardError]) -> None:
    upstream.handler = json_answer(doc, status, headers)
    dep = make_dep(upstream.url, provider)
    with pytest.raises(cls) as info:
        if mode == "complete":
            await provider.complete(req(), dep)
        else:
            agen = provider.stream(req(stream=True), dep)
            await agen.__anext__()  # the error comes before any chunk
    err = info.value
    assert type(err) is cls
    assert err.upstream_status == status
    if cls is UpstreamAuth:  # the gateway's credentials, not the client's: a 502 quoting nothing upstream
        assert_clean(err, f"deployment '{DEP}' refused the gateway's credentials ({status} ")
        assert err.status == 502 and err.code == "upstream_auth_error" and "Incorrect" not in err.message
        return
    assert_clean(err, f"deployment '{DEP}' answered {status}: ")
    upstream_message = doc["error"] if isinstance(doc["error"], str) else doc["error"]["message"]
    assert upstream_message in err.message
    if cls is RateLimited:
        assert err.retry_after == (1.5 if "retry-after-ms" in headers else 7.0)  # type: ignore[attr-defined]


async def test_error_body_that_is_not_json(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = raw_answer(b"<html>502 Bad Gateway</html>", 502, "text/html")
    with pytest.raises(Unavailable) as info:
        await provider.complete(req(), make_dep(upstream.url, provider))
    assert_clean(info.value, "answered 502")
    assert "html" not in info.value.message and "Bad Gateway" not in info.value.message


async def test_key_echoed_by_upstream_is_scrubbed(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(openai_error(f"bad key {request.headers['Authorization']}"), status=400)
    upstream.handler = echo
    with pytest.raises(BadRequest) as info:
        await provider.complete(req(), make_dep(upstream.url, provider))
    assert_clean(info.value)
    assert "bad key [redacted]" in info.value.message


@pytest.mark.parametrize("body", [b"this is not json", b'{"object": "chat.completion", "id": "x"}', b"[]"])
async def test_200_without_a_completion(upstream: FakeOpenAI, provider: OpenAIProvider, body: bytes) -> None:
    upstream.handler = raw_answer(body)
    with pytest.raises(ConnectionFailed) as info:
        await provider.complete(req(), make_dep(upstream.url, provider))
    assert_clean(info.value)


async def test_200_carrying_an_error(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = json_answer({"error": {"code": 502, "message": "provider returned error"}})
    with pytest.raises(Unavailable) as info:
        await provider.complete(req(), make_dep(upstream.url, provider))
    assert_clean(info.value, "provider returned error")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_connection_refused(provider: OpenAIProvider, mode: str) -> None:
    dep = make_dep(f"http://127.0.0.1:{closed_port()}/v1", provider)
    with pytest.raises(ConnectionFailed) as info:
        if mode == "complete":
            await provider.complete(req(), dep)
        else:
            await collect(provider.stream(req(stream=True), dep))
    assert_clean(info.value)


async def test_server_resets_connection(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    async def reset(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()
    upstream.handler = reset
    with pytest.raises(ConnectionFailed) as info:
        await provider.complete(req(), make_dep(upstream.url, provider))
    assert_clean(info.value)


async def test_server_resets_mid_stream(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    async def abort(request: web.Request) -> None:
        await asyncio.sleep(0.02)
        assert request.transport is not None
        request.transport.abort()
    upstream.handler = sse_answer(sse(chunk({"content": "partial"}), done=False), then=abort)
    got: list[StreamChunk] = []
    with pytest.raises(ConnectionFailed) as info:
        async for c in provider.stream(req(stream=True), make_dep(upstream.url, provider)):
            got.append(c)
    assert [c.text for c in got] == ["partial"]
    assert_clean(info.value)


@pytest.mark.parametrize(("payload", "cls", "text"), [
    ({"error": {"message": "The server had an error while processing your request.", "type": "server_error",
                "param": None, "code": None}}, Unavailable, "The server had an error"),
    ({"error": {"code": 429, "message": "Rate limit exceeded upstream"}}, RateLimited, "Rate limit exceeded"),
    ({"object": "error", "message": "maximum context length is 4096 tokens", "type": "BadRequestError",
      "code": 400}, ContextWindowExceeded, "maximum context length"),
])
async def test_error_event_mid_stream(upstream: FakeOpenAI, provider: OpenAIProvider, payload: dict[str, Any],
                                      cls: type[ModelyardError], text: str) -> None:
    upstream.handler = sse_answer(sse(chunk({"content": "so far"}), payload, done=False))
    got: list[str | None] = []
    with pytest.raises(cls) as info:
        async for c in provider.stream(req(stream=True), make_dep(upstream.url, provider)):
            got.append(c.text)
    assert got == ["so far"]
    assert_clean(info.value, text)


async def test_stream_ending_early(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = sse_answer(sse(chunk({"content": "cut"}), done=False))
    got: list[StreamChunk] = []
    with pytest.raises(ConnectionFailed) as info:
        async for c in provider.stream(req(stream=True), make_dep(upstream.url, provider)):
            got.append(c)
    assert len(got) == 1
    assert_clean(info.value, "stream ended early")


async def test_stream_answered_with_json_error(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = json_answer(openai_error("overloaded", "server_error"))  # 200, JSON, not SSE
    with pytest.raises(Unavailable) as info:
        await collect(provider.stream(req(stream=True), make_dep(upstream.url, provider)))
    assert_clean(info.value, "overloaded")


def stall(upstream: FakeOpenAI) -> Callable[[web.Request], Awaitable[None]]:
    async def wait(request: web.Request) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            upstream.disconnected.set()
            raise
    return wait


async def test_timeout(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    async def slow(request: web.Request) -> web.Response:
        await stall(upstream)(request)
        return web.json_response(OK_BODY)
    upstream.handler = slow
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(Timeout) as info:
        await provider.complete(req(), make_dep(upstream.url, provider, timeout_s=0.3))
    assert 0.25 < loop.time() - t0 < 2
    assert_clean(info.value, "timed out")


async def test_timeout_mid_stream(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = sse_answer(sse(chunk({"content": "a"}), done=False), then=stall(upstream))
    got: list[StreamChunk] = []
    with pytest.raises(Timeout) as info:
        async for c in provider.stream(req(stream=True), make_dep(upstream.url, provider, timeout_s=0.3)):
            got.append(c)
    assert len(got) == 1
    assert_clean(info.value)


# --- the consumer stops early: the upstream call must be dropped ------------------------------------

def endless(upstream: FakeOpenAI) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(500):
                await resp.write(b"data: " + orjson.dumps(chunk({"content": f"t{i} "})) + b"\n\n")
                await asyncio.sleep(0.01)
        except (ConnectionError, asyncio.CancelledError):
            upstream.disconnected.set()
            raise
        return resp
    return handle


async def test_aclose_drops_upstream(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = endless(upstream)
    agen = provider.stream(req(stream=True), make_dep(upstream.url, provider))
    first = await agen.__anext__()
    assert first.text == "t0 "
    await agen.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(upstream.disconnected.wait(), 2)


async def test_break_out_of_loop_drops_upstream(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = endless(upstream)
    stream = provider.stream(req(stream=True), make_dep(upstream.url, provider))
    async for c in stream:
        if c.text == "t2 ":
            break
    await stream.aclose()  # type: ignore[attr-defined]  # what `async with aclosing(...)` does
    await asyncio.wait_for(upstream.disconnected.wait(), 2)


async def test_cancellation_drops_upstream(upstream: FakeOpenAI, provider: OpenAIProvider) -> None:
    upstream.handler = endless(upstream)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(req(stream=True), make_dep(upstream.url, provider)):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(upstream.disconnected.wait(), 2)


async def test_only_the_usage_event_after_the_finish_is_the_last_chunk(upstream: FakeOpenAI,
                                                                       provider: OpenAIProvider) -> None:
    usage = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    # a server that reports usage early as well: that event does not end the stream
    upstream.handler = sse_answer([b"".join(sse(usage, chunk({"content": "a"}), done=False)),
                                   b"".join(sse(chunk({"content": "b"}), chunk({}, "stop"), usage))], pause=0.02)
    chunks = await collect(provider.stream(req(stream=True), make_dep(upstream.url, provider)))
    assert "".join(c.text or "" for c in chunks) == "ab"
    assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 2


# --- cache writes ---------------------------------------------------------------------------------

# Prices per 1M tokens: input 2, cache read 0.5, cache write 2.5, output 8.
CACHE_CARD = ModelCard("gpt-cache", "openai", 2.0, 8.0, cached_input_per_m=0.5, cache_write_per_m=2.5)
# 1000 prompt tokens: 200 read from the cache, 300 written to it, 500 plain; 100 output tokens.
CACHE_USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
               "prompt_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 300}}
CACHE_COST = (500 * 2.0 + 200 * 0.5 + 300 * 2.5 + 100 * 8.0) / 1e6


async def test_cache_writes_are_read_and_priced_at_the_write_price(upstream: FakeOpenAI,
                                                                   provider: OpenAIProvider) -> None:
    """`usage.prompt_tokens_details.cache_write_tokens` (part of prompt_tokens), in an answer and in a
    stream's usage event, priced at the card's cache-write price."""
    dep = make_dep(upstream.url, provider)
    dep.card = CACHE_CARD
    upstream.handler = json_answer({**OK_BODY, "usage": CACHE_USAGE})
    u = (await provider.complete(req(), dep)).usage
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens) == (1000, 200, 300, 100)
    assert dep.card.cost(u) == pytest.approx(CACHE_COST)
    upstream.handler = sse_answer(sse(chunk({"content": "ok"}), chunk({}, "stop"),
                                      {**chunk(), "choices": [], "usage": CACHE_USAGE}))
    chunks = await collect(provider.stream(req(stream=True), dep))
    su = chunks[-1].usage
    assert su is not None and (su.cached_input_tokens, su.cache_write_tokens) == (200, 300)
    assert dep.card.cost(su) == pytest.approx(CACHE_COST)
