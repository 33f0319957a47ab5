"""A response as cache bytes and back. Only what the client gets is kept (choices, usage, the
model name); the upstream's raw body is not, so a hit is rendered fresh in the client's format.

An OpenAI-format answer is encoded from its parsed wire choices (`ChatResponse.wire_choices`): the
gateway never builds its `Choice` objects unless something reads them, and building them only to
encode them was the larger part of a miss's store."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..types import ChatResponse, Choice, Message, TextPart, ToolCall, Usage

STORED_FINISH = frozenset(("stop", "length", "tool_calls"))  # not content_filter, not an error


def encode(resp: ChatResponse) -> bytes | None:
    """The cache bytes of a complete answer; None for one that must not be stored: no choices, a
    choice that did not finish normally, or content the cache cannot replay as it was."""
    wire = resp.wire_choices()
    rows = _wire_rows(wire) if wire is not None else None
    if rows is None:
        rows = _rows(resp.choices)
    if not rows:
        return None
    for r in rows:
        if r[3] not in STORED_FINISH:
            return None
    u = resp.usage
    body = orjson.dumps([resp.model, rows, resp.system_fingerprint,
                         [u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens]])
    # orjson's bytes keep its 4 KiB write buffer whatever their length (40 MiB for 10k short
    # answers kept as they came): the concatenation is a copy allocated to size, and the newline is
    # whitespace to the JSON parser.
    return body + b"\n"


def _rows(choices: list[Choice]) -> list[list[Any]] | None:
    """[index, text, tool calls, finish] per choice; None when a choice holds more than text (an
    image, or parts of a kind the provider left unparsed): its text alone would be a wrong answer."""
    rows: list[list[Any]] = []
    for c in choices:
        m = c.message
        if isinstance(m.content, list) and not all(type(p) is TextPart for p in m.content):
            return None
        calls = [[t.id, t.name, t.arguments] for t in m.tool_calls] if m.tool_calls else None
        rows.append([c.index, None if m.content is None else m.text(), calls, c.finish_reason])
    return rows


def _wire_rows(wire: list[dict[str, Any]]) -> list[list[Any]] | None:
    """The rows of plain-text wire choices as `choice_from_wire` would read them; None for tool calls
    or content parts, which are normalised by building the choices."""
    rows: list[list[Any]] = []
    for i, c in enumerate(wire):
        m = c.get("message")
        if type(m) is not dict:
            m = {}
        content = m.get("content")
        if m.get("tool_calls") or not (content is None or type(content) is str):
            return None
        rows.append([c.get("index", i), content, None, c.get("finish_reason")])
    return rows


def decode(body: bytes, response_id: str) -> ChatResponse:
    """A fresh response (new id, created now) carrying the cached answer and its usage."""
    model, rows, fingerprint, usage = orjson.loads(body)
    choices = [Choice(index=i, message=Message("assistant", text, tool_calls=[ToolCall(*t) for t in calls]
                                               if calls else None), finish_reason=finish)
               for i, text, calls, finish in rows]
    return ChatResponse(id=response_id, model=model, choices=choices, usage=Usage(*usage),
                        created=int(time.time()), system_fingerprint=fingerprint)
