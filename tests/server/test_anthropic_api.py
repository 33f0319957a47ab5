"""The Anthropic Messages format layer: request parsing, response and stream rendering.

The strongest checks go through the official `anthropic` SDK against a real aiohttp server on
127.0.0.1: the SDK's own request serialisation is fed to parse_request, and our rendered bodies and
SSE streams are read back by the SDK's parser and stream accumulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from modelyard.errors import BadRequest, RateLimited, Unavailable
from modelyard.server.anthropic_api import (
    StreamRenderer,
    error_body,
    error_event,
    parse_request,
    render_response,
)
from modelyard.types import (
    ChatResponse,
    Choice,
    ImagePart,
    Message,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)

B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def base(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": 256,
                            "messages": [{"role": "user", "content": "hi"}]}
    body.update(kw)
    return body


# --- parse_request: valid ------------------------------------------------------------------------

def test_minimal_request() -> None:
    req = parse_request(base())
    assert req.model == "claude-x"
    assert req.max_tokens == 256
    assert [(m.role, m.content) for m in req.messages] == [("user", "hi")]
    assert req.stream is False and req.include_usage is False
    assert req.tools is None and req.tool_choice is None and req.stop is None
    assert req.temperature is None and req.top_p is None and req.user is None
    assert req.metadata == {} and req.extra == {}


def test_system_string() -> None:
    req = parse_request(base(system="Be terse."))
    assert [(m.role, m.content) for m in req.messages] == [("system", "Be terse."), ("user", "hi")]
    assert req.system_text() == "Be terse."


def test_system_blocks_joined_and_cache_control_ignored() -> None:
    req = parse_request(base(system=[
        {"type": "text", "text": "You are a helper.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in French."},
    ]))
    assert req.messages[0].role == "system"
    assert req.messages[0].content == "You are a helper.\n\nAnswer in French."
    assert len(req.messages) == 2


def test_empty_system_adds_no_message() -> None:
    assert [m.role for m in parse_request(base(system="")).messages] == ["user"]


def test_sampling_stop_stream_and_top_k() -> None:
    req = parse_request(base(temperature=0.3, top_p=0.9, top_k=40, stop_sequences=["END", "\n\n"],
                             stream=True))
    assert req.temperature == 0.3 and req.top_p == 0.9
    assert req.extra == {"top_k": 40}
    assert req.stop == ["END", "\n\n"]
    assert req.stream is True and req.include_usage is True


def test_integer_temperature_accepted() -> None:
    assert parse_request(base(temperature=1)).temperature == 1.0


def test_images_base64_and_url() -> None:
    req = parse_request(base(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What differs?"},
    ]}]))
    (msg,) = req.messages
    assert msg.role == "user" and msg.has_image()
    assert isinstance(msg.content, list)
    first, second, text = msg.content
    assert isinstance(first, ImagePart) and first.url == f"data:image/png;base64,{B64}"
    assert first.split_data_url() == ("image/png", B64)
    assert isinstance(second, ImagePart) and second.url == "https://example.com/cat.jpg"
    assert text == TextPart("What differs?")


def test_several_text_blocks_stay_parts() -> None:
    req = parse_request(base(messages=[{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]))
    assert req.messages[0].content == [TextPart("a"), TextPart("b")]


def test_single_text_block_becomes_string() -> None:
    req = parse_request(base(messages=[{"role": "user", "content": [{"type": "text", "text": "only"}]}]))
    assert req.messages[0].content == "only"


def test_tool_use_and_tool_result_round_trip() -> None:
    req = parse_request(base(
        tools=[{"name": "get_weather", "description": "Weather now",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}},
               {"name": "get_time", "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"}}],
        tool_choice={"type": "auto"},
        messages=[
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, cloudy"},
                {"type": "tool_result", "tool_use_id": "toolu_2",
                 "content": [{"type": "text", "text": "14:05"}, {"type": "text", "text": "CET"}]},
                {"type": "text", "text": "Summarise please."},
            ]},
        ]))
    roles = [m.role for m in req.messages]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    asst = req.messages[1]
    assert asst.content == "Checking."
    assert asst.tool_calls == [ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
                               ToolCall("toolu_2", "get_time", "{}")]
    assert orjson.loads(asst.tool_calls[0].arguments) == {"city": "Paris"}
    t1, t2 = req.messages[2], req.messages[3]
    assert (t1.tool_call_id, t1.content) == ("toolu_1", "18C, cloudy")
    assert (t2.tool_call_id, t2.content) == ("toolu_2", "14:05\nCET")
    assert req.messages[4].content == "Summarise please."
    assert req.tools is not None
    assert [t.name for t in req.tools] == ["get_weather", "get_time"]
    assert req.tools[0].description == "Weather now" and req.tools[1].description is None
    assert req.tools[0].parameters["required"] == ["city"]
    assert req.tool_choice == "auto"


def test_assistant_tool_use_only_has_no_text() -> None:
    req = parse_request(base(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": [1]}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
    ]))
    assert req.messages[1].content is None
    assert req.messages[1].tool_calls == [ToolCall("t", "f", '{"a":[1]}')]
    assert [(m.role, m.content) for m in req.messages[2:]] == [("tool", "")]


def test_thinking_blocks_in_history_are_dropped() -> None:
    req = parse_request(base(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                          {"type": "text", "text": "done"}]},
    ]))
    assert req.messages[1].content == "done"


@pytest.mark.parametrize(("choice", "expected", "extra"), [
    ({"type": "auto"}, "auto", {}),
    ({"type": "any"}, "required", {}),
    ({"type": "none"}, "none", {}),
    ({"type": "tool", "name": "get_weather"}, {"name": "get_weather"}, {}),
    ({"type": "auto", "disable_parallel_tool_use": True}, "auto", {"parallel_tool_calls": False}),
])
def test_tool_choice(choice: dict[str, Any], expected: Any, extra: dict[str, Any]) -> None:
    req = parse_request(base(tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
                             tool_choice=choice))
    assert req.tool_choice == expected
    assert req.extra == extra


def test_metadata_user_and_routing_hints() -> None:
    req = parse_request(base(metadata={"user_id": "u-42", "tags": ["batch"], "mode": "hedge"},
                             modelyard={"mode": "vote", "max_cost_usd": 0.01}))
    assert req.user == "u-42"
    assert req.metadata == {"tags": ["batch"], "mode": "vote", "max_cost_usd": 0.01}


def test_unknown_top_level_fields_ignored() -> None:
    req = parse_request(base(service_tier="auto", thinking={"type": "enabled", "budget_tokens": 1024},
                             some_future_field={"x": 1}))
    assert req.model == "claude-x" and req.extra == {}


# --- parse_request: invalid ----------------------------------------------------------------------

def msgs(*m: Any) -> dict[str, Any]:
    return base(messages=list(m))


BAD: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "body must be a JSON object"),
    ("string body", "hello", "body must be a JSON object"),
    ("missing model", {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model: required"),
    ("model not str", base(model=3), "model: required"),
    ("missing max_tokens", {"model": "m", "messages": [{"role": "user", "content": "x"}]},
     "max_tokens: required, a positive integer"),
    ("zero max_tokens", base(max_tokens=0), "max_tokens: required, a positive integer"),
    ("string max_tokens", base(max_tokens="100"), "max_tokens: required, a positive integer"),
    ("bool max_tokens", base(max_tokens=True), "max_tokens:"),
    ("empty messages", base(messages=[]), "messages: must be a non-empty list"),
    ("messages not list", base(messages={"role": "user"}), "messages: must be a non-empty list"),
    ("missing messages", {"model": "m", "max_tokens": 5}, "messages: must be a non-empty list"),
    ("message not object", msgs("hi"), "messages[0]: must be an object"),
    ("system role", msgs({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "system", "content": "c"}),
     "messages[2].role: must be 'user' or 'assistant', got 'system' (put system prompts in the top-level "
     "'system' field)"),
    ("tool role", msgs({"role": "tool", "content": "x"}), "messages[0].role: must be 'user' or 'assistant'"),
    ("role not a string", msgs({"role": "user", "content": "hi"}, {"role": ["user"], "content": "x"}),
     "messages[1].role: must be 'user' or 'assistant', got ['user']"),
    ("content number", msgs({"role": "user", "content": 5}), "messages[0].content: must be a string or"),
    ("content missing", msgs({"role": "user"}), "messages[0].content: must be a string or"),
    ("content empty list", msgs({"role": "user", "content": []}), "messages[0].content:"),
    ("block not object", msgs({"role": "user", "content": ["hi"]}), "messages[0].content[0]: must be"),
    ("unknown block", msgs({"role": "user", "content": [{"type": "document", "source": {}}]}),
     "messages[0].content[0].type: unsupported content block type 'document'"),
    ("unknown assistant block", msgs({"role": "user", "content": "x"},
                                     {"role": "assistant", "content": [{"type": "audio"}]}),
     "messages[1].content[0].type: unsupported content block type 'audio'"),
    ("text block without text", msgs({"role": "user", "content": [{"type": "text"}]}),
     "messages[0].content[0].text: required"),
    ("image without source", msgs({"role": "user", "content": [{"type": "image"}]}),
     "messages[0].content[0].source: required"),
    ("image bad source type", msgs({"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}),
     "messages[0].content[0].source.type: must be 'base64' or 'url'"),
    ("image base64 without data", msgs({"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]}),
     "messages[0].content[0].source.data: required"),
    ("tool_result without id", msgs({"role": "user", "content": [{"type": "tool_result", "content": "x"}]}),
     "messages[0].content[0].tool_use_id: required"),
    ("tool_result image content", msgs({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}),
     "messages[0].content[0].content[0].type: must be 'text'"),
    ("tool_result in assistant", msgs({"role": "assistant", "content": [
        {"type": "tool_result", "tool_use_id": "t"}]}), "messages[0].content[0].type:"),
    ("tool_use in user", msgs({"role": "user", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}), "messages[0].content[0].type:"),
    ("tool_use input not object", msgs({"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}),
     "messages[0].content[0].input: must be an object"),
    ("tool_use without name", msgs({"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "input": {}}]}), "messages[0].content[0].name: required"),
    ("temperature string", base(temperature="0.5"), "temperature: must be a number"),
    ("temperature too high", base(temperature=1.5), "temperature: must be between 0 and 1"),
    ("top_p bool", base(top_p=True), "top_p: must be a number"),
    ("top_k float", base(top_k=2.5), "top_k: must be an integer"),
    ("stop_sequences string", base(stop_sequences="END"), "stop_sequences: must be a list of strings"),
    ("stream string", base(stream="yes"), "stream: must be true or false"),
    ("system number", base(system=5), "system: must be a string or a list"),
    ("system block not text", base(system=[{"type": "image"}]), "system[0]: must be a text block"),
    ("tools not list", base(tools={"name": "f"}), "tools: must be a list"),
    ("tool without name", base(tools=[{"input_schema": {"type": "object"}}]), "tools[0].name: required"),
    ("tool empty name", base(tools=[{"name": "", "input_schema": {}}]), "tools[0].name: must be a non-empty"),
    ("tool without schema", base(tools=[{"name": "f"}]), "tools[0].input_schema: required"),
    ("server tool", base(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
     "tools[0].type: server tool 'web_search_20250305' is not supported"),
    ("tool_choice string", base(tool_choice="auto"), "tool_choice: must be an object"),
    ("tool_choice bad type", base(tool_choice={"type": "some"}), "tool_choice.type: must be"),
    ("tool_choice tool without name", base(tool_choice={"type": "tool"}), "tool_choice.name: required"),
    ("metadata list", base(metadata=["u"]), "metadata: must be an object"),
    ("metadata user_id number", base(metadata={"user_id": 7}), "metadata.user_id: must be a string"),
    ("modelyard not object", base(modelyard="fast"), "modelyard: must be an object"),
    ("output_config format not json_schema", base(output_config={"format": {"type": "xml"}}),
     "output_config.format: must be"),
    ("output_config schema missing", base(output_config={"format": {"type": "json_schema"}}),
     "output_config.format.schema: required"),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in BAD], ids=[n for n, _, _ in BAD])
def test_bad_request(body: Any, expected: str) -> None:
    with pytest.raises(BadRequest) as exc:
        parse_request(body)
    err = exc.value
    assert expected in err.message
    assert err.status == 400 and err.anthropic_type == "invalid_request_error"
    if not expected.startswith("body"):
        assert err.param is not None and err.message.startswith(err.param + ": ")


# --- render_response -----------------------------------------------------------------------------

def response(text: str | None, calls: list[ToolCall] | None = None, finish: str | None = "stop",
             rid: str = "chatcmpl-abc123") -> ChatResponse:
    message = Message("assistant", text, tool_calls=calls)
    return ChatResponse(id=rid, model="gpt-4o-2024", choices=[Choice(0, message, finish)],
                        usage=Usage(input_tokens=100, output_tokens=20, cached_input_tokens=30))


def test_render_text_response() -> None:
    body = orjson.loads(render_response(response("Hello there."), "claude-x"))
    assert body == {
        "id": "msg_abc123", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Hello there."}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 70, "output_tokens": 20, "cache_read_input_tokens": 30,
                  "cache_creation_input_tokens": 0},
    }


def test_render_tool_calls() -> None:
    calls = [ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
             ToolCall("call_2", "broken", "{not json")]
    body = orjson.loads(render_response(response("Checking.", calls, "tool_calls", rid="msg_keep"), "m"))
    assert body["id"] == "msg_keep"
    assert body["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "broken", "input": {}},
    ]
    assert body["stop_reason"] == "tool_use"


def test_render_tool_calls_without_text_and_stop_quirk() -> None:
    body = orjson.loads(render_response(response(None, [ToolCall("c", "f", "")], "stop"), "m"))
    assert body["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]
    assert body["stop_reason"] == "tool_use"


@pytest.mark.parametrize(("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens"),
                                                ("content_filter", "refusal"), (None, "end_turn")])
def test_render_stop_reasons(finish: str | None, reason: str) -> None:
    assert orjson.loads(render_response(response("x", None, finish), "m"))["stop_reason"] == reason


def test_render_id_sanitised() -> None:
    assert orjson.loads(render_response(response("x", rid="gen/1 2"), "m"))["id"] == "msg_gen12"
    assert orjson.loads(render_response(response("x", rid="///"), "m"))["id"].startswith("msg_")


# --- StreamRenderer ------------------------------------------------------------------------------

def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    assert raw.endswith(b"\n\n")
    for block in raw.split(b"\n\n")[:-1]:
        lines = block.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
        name, data = lines[0][7:].decode(), orjson.loads(lines[1][6:])
        assert data["type"] == name
        events.append((name, data))
    return events


def chunk(**kw: Any) -> StreamChunk:
    return StreamChunk(id="chatcmpl-s1", model="up", **kw)


USAGE = Usage(input_tokens=50, output_tokens=12, cached_input_tokens=10)

TEXT_ONLY = [chunk(role="assistant", text=""), chunk(text="Hel"), chunk(text="lo, "),
             chunk(text="wörld \"q\"\n"), chunk(finish_reason="stop"), chunk(usage=USAGE)]

TEXT_THEN_TOOLS = [
    chunk(role="assistant"),
    chunk(text="Let me "), chunk(text="check."),
    chunk(tool_calls=[ToolCallDelta(0, id="call_a", name="get_weather", arguments="")]),
    chunk(tool_calls=[ToolCallDelta(0, arguments='{"city":')]),
    chunk(tool_calls=[ToolCallDelta(0, arguments=' "Paris"}')]),
    chunk(tool_calls=[ToolCallDelta(1, id="call_b", name="get_time", arguments='{"tz"')]),
    chunk(tool_calls=[ToolCallDelta(1, arguments=': "CET"}')], finish_reason="tool_calls"),
    chunk(usage=USAGE),
]

TOOL_ONLY = [
    chunk(role="assistant",
          tool_calls=[ToolCallDelta(0, id="call_z", name="lookup", arguments='{"q": "x"}')]),
    chunk(finish_reason="stop"),  # some providers say "stop" after tool calls
    chunk(usage=Usage(input_tokens=5, output_tokens=3)),
]


def render(chunks: list[StreamChunk]) -> bytes:
    r = StreamRenderer("claude-x", "msg_s1")
    out = b"".join(r.feed(c) for c in chunks)
    assert r.finished
    assert r.finish(USAGE, "stop") == b""  # already finished by the usage chunk
    assert r.feed(chunk(text="late")) == b""
    return out


def test_stream_text_only() -> None:
    events = parse_sse(render(TEXT_ONLY))
    assert [n for n, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_delta", "content_block_stop",
                                      "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["id"] == "msg_s1" and start["model"] == "claude-x" and start["content"] == []
    assert start["role"] == "assistant" and start["stop_reason"] is None
    assert events[2][1] == {"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}
    deltas = [d for n, d in events if n == "content_block_delta"]
    assert all(d["index"] == 0 and d["delta"]["type"] == "text_delta" for d in deltas)
    assert "".join(d["delta"]["text"] for d in deltas) == 'Hello, wörld "q"\n'
    assert events[6][1] == {"type": "content_block_stop", "index": 0}
    assert events[7][1] == {"type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"input_tokens": 40, "output_tokens": 12, "cache_read_input_tokens": 10,
                                      "cache_creation_input_tokens": 0}}


def test_stream_text_then_two_tools() -> None:
    events = parse_sse(render(TEXT_THEN_TOOLS))
    names = [n for n, _ in events]
    block = ["content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"]
    assert names == ["message_start", "ping", *block, *block, *block, "message_delta", "message_stop"]
    starts = [d for n, d in events if n == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "get_weather",
                                          "input": {}}
    assert starts[2]["content_block"] == {"type": "tool_use", "id": "call_b", "name": "get_time",
                                          "input": {}}
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert stops == [0, 1, 2]

    def joined(index: int, kind: str, field: str) -> str:
        ds = [d["delta"] for n, d in events if n == "content_block_delta" and d["index"] == index]
        assert all(d["type"] == kind for d in ds)
        return "".join(d[field] for d in ds)

    assert joined(0, "text_delta", "text") == "Let me check."
    assert orjson.loads(joined(1, "input_json_delta", "partial_json")) == {"city": "Paris"}
    assert orjson.loads(joined(2, "input_json_delta", "partial_json")) == {"tz": "CET"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_stream_tool_only() -> None:
    events = parse_sse(render(TOOL_ONLY))
    assert [n for n, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                      "content_block_stop", "message_delta", "message_stop"]
    assert events[2][1]["index"] == 0 and events[2][1]["content_block"]["type"] == "tool_use"
    assert events[3][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"q": "x"}'}
    assert events[5][1]["delta"]["stop_reason"] == "tool_use"
    assert events[5][1]["usage"]["output_tokens"] == 3


def test_stream_late_piece_of_earlier_tool_call_is_not_lost() -> None:
    r = StreamRenderer("m", "msg_i")
    out = r.feed(chunk(tool_calls=[ToolCallDelta(0, id="a", name="f", arguments='{"x":')]))
    out += r.feed(chunk(tool_calls=[ToolCallDelta(1, id="b", name="g", arguments="{}")]))
    out += r.feed(chunk(tool_calls=[ToolCallDelta(0, arguments="1}")]))
    out += r.feed(chunk(usage=Usage(1, 1)))
    deltas = [d for n, d in parse_sse(out) if n == "content_block_delta"]
    assert [(d["index"], d["delta"]["partial_json"]) for d in deltas] == [(0, '{"x":'), (1, "{}"), (0, "1}")]


def test_stream_finish_without_usage_chunk() -> None:
    r = StreamRenderer("m", "msg_x", input_tokens=7)
    out = r.feed(chunk(text="cut"))
    out += r.feed(chunk(text=" short", finish_reason="length"))
    out += r.finish(None, None)
    events = parse_sse(out)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 7
    assert [n for n, _ in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["output_tokens"] == 0
    assert r.finish(USAGE, "stop") == b""


def test_stream_empty() -> None:
    r = StreamRenderer("m", "msg_e")
    assert r.start() and r.start() == b""
    events = parse_sse(r.finish(Usage(3, 0), "stop"))
    assert [n for n, _ in events] == ["message_delta", "message_stop"]


def test_stream_empty_without_start() -> None:
    events = parse_sse(StreamRenderer("m", "msg_e").finish(None, "content_filter"))
    assert [n for n, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert events[2][1]["delta"]["stop_reason"] == "refusal"


def test_error_event_and_body() -> None:
    err = RateLimited("deployment 'a' is rate limited", retry_after=3)
    assert orjson.loads(error_body(err)) == {"type": "error", "error": {
        "type": "rate_limit_error", "message": "deployment 'a' is rate limited"}}
    (ev,) = parse_sse(error_event(Unavailable("upstream down")))
    assert ev == ("error", {"type": "error",
                            "error": {"type": "overloaded_error", "message": "upstream down"}})


# --- through the official anthropic SDK ------------------------------------------------------------

class Upstream:
    """A tiny server that answers /v1/messages with prepared bytes and keeps the request bodies."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.body = b""
        self.content_type = "application/json"
        self.status = 200

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(orjson.loads(await request.read()))
        if self.content_type == "text/event-stream":
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            # Write in small pieces so the SDK's SSE decoder has to reassemble events.
            for i in range(0, len(self.body), 37):
                await resp.write(self.body[i:i + 37])
            await resp.write_eof()
            return resp
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)


@pytest.fixture
async def sdk() -> AsyncIterator[tuple[anthropic.AsyncAnthropic, Upstream]]:
    upstream = Upstream()
    app = web.Application()
    app.router.add_post("/v1/messages", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key="x", max_retries=0)
    try:
        yield client, upstream
    finally:
        await client.close()
        await runner.cleanup()


async def test_sdk_request_is_parsed(sdk: tuple[anthropic.AsyncAnthropic, Upstream]) -> None:
    client, upstream = sdk
    upstream.body = render_response(response("ok"), "claude-x")
    await client.messages.create(
        model="claude-x", max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
                {"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user",
             "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "-3C"}]},
        ],
        tools=[{"name": "get_weather", "description": "d",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        tool_choice={"type": "any"}, stop_sequences=["STOP"], metadata={"user_id": "alice"},
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
        # this SDK release dropped the sampling kwargs; older clients still send them
        extra_body={"modelyard": {"mode": "hedge"}, "temperature": 0.2, "top_k": 5},
    )
    req = parse_request(upstream.requests[0])
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert req.messages[0].content == "Be brief."
    user = req.messages[1]
    assert isinstance(user.content, list) and isinstance(user.content[0], ImagePart)
    assert user.content[0].url == f"data:image/png;base64,{B64}" and user.content[1] == TextPart("weather?")
    assert req.messages[2].tool_calls == [ToolCall("toolu_9", "get_weather", '{"city":"Oslo"}')]
    assert (req.messages[3].tool_call_id, req.messages[3].content) == ("toolu_9", "-3C")
    assert req.tool_choice == "required" and req.stop == ["STOP"] and req.temperature == 0.2
    assert req.extra == {"top_k": 5} and req.user == "alice" and req.metadata == {"mode": "hedge"}
    assert req.stream is False
    assert req.response_format == {"type": "json_schema", "json_schema": {
        "name": "output", "schema": {"type": "object"}, "strict": True}}


async def test_sdk_reads_rendered_response(sdk: tuple[anthropic.AsyncAnthropic, Upstream]) -> None:
    client, upstream = sdk
    upstream.body = render_response(
        response("Calling.", [ToolCall("call_1", "get_weather", '{"city":"Rome"}')], "tool_calls"),
        "claude-x")
    msg = await client.messages.create(model="claude-x", max_tokens=10,
                                       messages=[{"role": "user", "content": "x"}])
    assert msg.id == "msg_abc123" and msg.model == "claude-x" and msg.stop_reason == "tool_use"
    assert msg.content[0].type == "text" and msg.content[0].text == "Calling."
    tool = msg.content[1]
    assert tool.type == "tool_use" and tool.id == "call_1" and tool.input == {"city": "Rome"}
    usage = msg.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (70, 20, 30)


async def test_sdk_reads_rendered_error(sdk: tuple[anthropic.AsyncAnthropic, Upstream]) -> None:
    client, upstream = sdk
    upstream.status = 400
    upstream.body = error_body(BadRequest("max_tokens: required, a positive integer", param="max_tokens"))
    with pytest.raises(anthropic.BadRequestError) as exc:
        await client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 400
    assert exc.value.body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "max_tokens: required, a positive integer"}}


async def sdk_stream(client: anthropic.AsyncAnthropic, upstream: Upstream, chunks: list[StreamChunk]) -> Any:
    upstream.content_type = "text/event-stream"
    upstream.body = render(chunks)
    texts = []
    async with client.messages.stream(model="claude-x", max_tokens=10,
                                      messages=[{"role": "user", "content": "x"}]) as stream:
        async for text in stream.text_stream:
            texts.append(text)
        final = await stream.get_final_message()
    assert upstream.requests[-1]["stream"] is True
    return "".join(texts), final


async def test_sdk_stream_text(sdk: tuple[anthropic.AsyncAnthropic, Upstream]) -> None:
    text, msg = await sdk_stream(*sdk, TEXT_ONLY)
    assert text == 'Hello, wörld "q"\n'
    assert msg.id == "msg_s1" and msg.model == "claude-x" and msg.stop_reason == "end_turn"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == text
    usage = msg.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (40, 12, 10)


async def test_sdk_stream_text_and_tools(sdk: tuple[anthropic.AsyncAnthropic, Upstream]) -> None:
    text, msg = await sdk_stream(*sdk, TEXT_THEN_TOOLS)
    assert text == "Let me check."
    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use"]
    assert msg.content[0].text == "Let me check."
    calls = [(b.id, b.name, b.input) for b in msg.content[1:]]
    assert calls == [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_time", {"tz": "CET"})]


async def test_sdk_stream_tool_only(sdk: tuple[anthropic.AsyncAnthropic, Upstream]) -> None:
    text, msg = await sdk_stream(*sdk, TOOL_ONLY)
    assert text == ""
    assert [(b.type, b.id, b.input) for b in msg.content] == [("tool_use", "call_z", {"q": "x"})]
    assert msg.stop_reason == "tool_use" and msg.usage.output_tokens == 3


async def test_sdk_stream_error_after_start(sdk: tuple[anthropic.AsyncAnthropic, Upstream]) -> None:
    client, upstream = sdk
    r = StreamRenderer("claude-x", "msg_err")
    upstream.content_type = "text/event-stream"
    upstream.body = r.feed(chunk(text="partial")) + error_event(Unavailable("deployment 'a' went away"))
    got = []
    with pytest.raises(anthropic.APIStatusError) as exc:
        async with client.messages.stream(model="claude-x", max_tokens=10,
                                          messages=[{"role": "user", "content": "x"}]) as stream:
            async for text in stream.text_stream:
                got.append(text)
    assert got == ["partial"]
    assert exc.value.body == {"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "deployment 'a' went away"}}
