"""Cache bytes of an answer: an OpenAI-format answer encoded from its wire choices decodes to what
its built choices would have given; incomplete answers are never encoded."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelyard.cache import codec
from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.providers.openai import from_wire
from modelyard.types import ChatResponse, Choice, ImagePart, Message, TextPart, ToolCall, Usage

DEP = Deployment(name="up", provider="openai", model="m", card=unknown_card("m", "openai"), api_base="http://x/v1")


def _wire(*choices: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": "chatcmpl-up", "model": "m-2024", "system_fingerprint": "fp_1", "choices": list(choices),
                         "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})


def _choice(content: Any, finish: str | None = "stop", **message: Any) -> dict[str, Any]:
    return {"index": 0, "message": {"role": "assistant", "content": content, **message}, "finish_reason": finish}


def _seen(resp: ChatResponse) -> list[Any]:
    return [resp.model, resp.system_fingerprint, resp.usage,
            [(c.index, c.message.content, c.message.tool_calls, c.finish_reason) for c in resp.choices]]


@pytest.mark.parametrize("body", [
    _wire(_choice("Hello.")),
    _wire(_choice(None, finish="length")),
    _wire(_choice("a"), {**_choice("b"), "index": 1}),
    _wire({"message": "not an object", "finish_reason": "stop"}),
    # normalised by building the choices: tool calls with object arguments, content parts
    _wire(_choice(None, finish="tool_calls", tool_calls=[
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}])),
])
def test_wire_answers_decode_as_their_built_choices(body: bytes) -> None:
    fresh = from_wire(body, DEP)  # choices not built: encoded from the wire
    built = from_wire(body, DEP)
    assert built.choices  # built before encoding
    data = codec.encode(fresh)
    assert data is not None and data == codec.encode(built)
    hit = codec.decode(data, "chatcmpl-new")
    assert hit.id == "chatcmpl-new" and hit.openai_body is None  # rendered fresh, not the upstream's body
    assert _seen(hit) == _seen(built)


@pytest.mark.parametrize("body", [
    _wire(),
    _wire(_choice("partial", finish=None)),
    _wire(_choice("blocked", finish="content_filter")),
    _wire(_choice("a"), {**_choice("b", finish="content_filter"), "index": 1}),
    _wire(_choice([{"type": "text", "text": "in parts"}])),  # replayed as its text alone, it would be wrong
])
def test_incomplete_or_unreplayable_answers_are_not_encoded(body: bytes) -> None:
    assert codec.encode(from_wire(body, DEP)) is None


def test_answers_of_other_providers() -> None:
    calls = [ToolCall("c1", "f", '{"x": 1}')]
    resp = ChatResponse(id="r", model="claude", usage=Usage(5, 2), choices=[
        Choice(0, Message("assistant", None, tool_calls=calls), "tool_calls")])
    data = codec.encode(resp)
    assert data is not None and _seen(codec.decode(data, "x")) == _seen(resp)
    resp.choices[0].finish_reason = None
    assert codec.encode(resp) is None
    parts = ChatResponse(id="r", model="m", usage=Usage(), choices=[Choice(0, Message("assistant", [TextPart("a")]))])
    assert orjson.loads(codec.encode(parts) or b"")[1] == [[0, "a", None, "stop"]]
    parts.choices[0].message.content = [TextPart("a"), ImagePart("https://x/y.png")]
    assert codec.encode(parts) is None


def test_an_answer_whose_choices_were_replaced_is_encoded_from_the_replacement() -> None:
    resp = from_wire(_wire(_choice("upstream text")), DEP)
    resp.choices = [Choice(index=0, message=Message("assistant", "rewritten"), finish_reason="stop")]
    data = codec.encode(resp)
    assert data is not None and codec.decode(data, "x").text == "rewritten"


def test_a_short_answer_takes_memory_to_its_size() -> None:
    """An entry is kept for hours: its bytes must not carry the JSON writer's whole buffer."""
    import tracemalloc

    resp = from_wire(_wire(_choice("Hello.")), DEP)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [codec.encode(resp) for _ in range(200)]
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    body = kept[0]
    assert body is not None
    assert per_entry < len(body) + 256, per_entry  # (~4 KiB per entry when kept as orjson made it)
