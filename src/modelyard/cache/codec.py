"""A response as cache bytes and back. Only what the client gets is kept (choices, usage, the
model name); the upstream's raw body is not, so a hit is rendered fresh in the client's format."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..types import ChatResponse, Choice, Message, ToolCall, Usage


def encode(resp: ChatResponse) -> bytes:
    choices: list[Any] = []
    for c in resp.choices:
        m = c.message
        calls = [[t.id, t.name, t.arguments] for t in m.tool_calls] if m.tool_calls else None
        choices.append([c.index, None if m.content is None else m.text(), calls, c.finish_reason])
    u = resp.usage
    return orjson.dumps({"model": resp.model, "choices": choices, "fingerprint": resp.system_fingerprint,
                         "usage": [u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens]})


def decode(body: bytes, response_id: str) -> ChatResponse:
    """A fresh response (new id, created now) carrying the cached answer and its usage."""
    d = orjson.loads(body)
    choices = [Choice(index=i, message=Message("assistant", text, tool_calls=[ToolCall(*t) for t in calls]
                                               if calls else None), finish_reason=finish)
               for i, text, calls, finish in d["choices"]]
    return ChatResponse(id=response_id, model=d["model"], choices=choices, usage=Usage(*d["usage"]),
                        created=int(time.time()), system_fingerprint=d.get("fingerprint"))
