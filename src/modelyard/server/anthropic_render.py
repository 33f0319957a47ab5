"""Anthropic Messages responses and streams from the neutral types: the rendering half of the
Anthropic API (anthropic_api.py parses requests). Pure functions and one small state machine."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..types import ChatResponse, StreamChunk, ToolCall, Usage

# --- response ------------------------------------------------------------------------------------

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "function_call": "tool_use", "content_filter": "refusal"}


def _stop_reason(finish_reason: str | None, has_tool_calls: bool) -> str:
    # Some providers say "stop" even when the turn ends in tool calls; agent loops key on "tool_use".
    if has_tool_calls and finish_reason in (None, "stop"):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def _usage(usage: Usage | None) -> dict[str, int]:
    """Anthropic counts cache reads apart from input_tokens; the neutral Usage includes them."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0}
    cached = usage.cached_input_tokens
    return {"input_tokens": max(0, usage.input_tokens - cached), "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}


def _tool_input(arguments: str) -> Any:
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message_id(upstream_id: str) -> str:
    """An Anthropic-looking id (`msg_...`) derived from the upstream's id, so logs still match."""
    if upstream_id.startswith("msg_"):
        return upstream_id
    suffix = "".join(c for c in upstream_id.removeprefix("chatcmpl-") if c.isalnum() or c in "_-")
    return "msg_" + (suffix or uuid.uuid4().hex)


def render_response(resp: ChatResponse, model: str) -> bytes:
    """A ChatResponse as an Anthropic Message JSON body."""
    content: list[dict[str, Any]] = []
    finish_reason = None
    calls: list[ToolCall] = []
    if resp.choices:
        choice = resp.choices[0]
        finish_reason = choice.finish_reason
        text = choice.message.text()
        if text:
            content.append({"type": "text", "text": text})
        calls = choice.message.tool_calls or []
        for call in calls:
            content.append({"type": "tool_use", "id": call.id, "name": call.name,
                            "input": _tool_input(call.arguments)})
    body: dict[str, Any] = {
        "id": message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(finish_reason, bool(calls)),
        "stop_sequence": None,
        "usage": _usage(resp.usage),
    }
    if resp.modelyard is not None:
        body["modelyard"] = resp.modelyard
    return orjson.dumps(body)


# --- streaming -----------------------------------------------------------------------------------

def _event(name: bytes, data: Any) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_PING = _event(b"ping", {"type": "ping"})
_MESSAGE_STOP = _event(b"message_stop", {"type": "message_stop"})


def _delta_prefix(index: int, delta_type: str, field: str) -> bytes:
    return (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"%s","%s":' % (index, delta_type.encode(), field.encode()))


class StreamRenderer:
    """Turns the neutral chunk stream into Anthropic's SSE event sequence.

    message_start, ping, then content blocks (text, tool_use) each opened with content_block_start,
    fed with deltas and closed with content_block_stop when the next block opens or the stream ends,
    then message_delta (stop reason and the real usage, which most providers only know at the end)
    and message_stop. Text deltas are spliced into prebuilt byte prefixes: this runs per token.
    """

    __slots__ = ("_blocks", "_finish_reason", "_finished", "_has_tools", "_input_tokens", "_message_id",
                 "_model", "_open", "_started", "_text_prefix", "_tools")

    def __init__(self, model: str, message_id: str, *, input_tokens: int = 0) -> None:
        """`input_tokens`: the prompt size if known up front (an estimate is fine): message_start
        reports it, and message_delta later overwrites it with the upstream's count."""
        self._model = model
        self._message_id = message_id
        self._input_tokens = input_tokens
        self._started = False
        self._finished = False
        self._blocks = 0  # content blocks opened so far = the next block's index
        self._open: int | None = None  # index of the open block
        self._text_prefix: bytes | None = None  # delta prefix of the open text block, if one is open
        self._tools: dict[int, tuple[int, bytes]] = {}  # neutral tool index -> (block index, delta prefix)
        self._has_tools = False
        self._finish_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self) -> bytes:
        """message_start and ping; idempotent, so the server may flush it before the first token."""
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {"id": self._message_id, "type": "message", "role": "assistant", "model": self._model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self._input_tokens, "output_tokens": 0}}
        return _event(b"message_start", {"type": "message_start", "message": message}) + _PING

    def _close_open(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(_event(b"content_block_stop", {"type": "content_block_stop", "index": self._open}))
            self._open = None
            self._text_prefix = None

    def _open_block(self, block: dict[str, Any], out: list[bytes]) -> int:
        self._close_open(out)
        index = self._blocks
        self._blocks += 1
        self._open = index
        out.append(_event(b"content_block_start",
                          {"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def feed(self, chunk: StreamChunk) -> bytes:
        """SSE bytes for one neutral chunk (b"" if it carries nothing to send)."""
        if self._finished:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self.start())
        if chunk.finish_reason:
            self._finish_reason = chunk.finish_reason
        if chunk.text:
            if self._text_prefix is None:
                index = self._open_block({"type": "text", "text": ""}, out)
                self._text_prefix = _delta_prefix(index, "text_delta", "text")
            out.append(self._text_prefix + orjson.dumps(chunk.text) + b"}}\n\n")
        if chunk.tool_calls:
            for td in chunk.tool_calls:
                entry = self._tools.get(td.index)
                if entry is None:
                    block = {"type": "tool_use", "id": td.id or "toolu_" + uuid.uuid4().hex[:24],
                             "name": td.name or "", "input": {}}
                    index = self._open_block(block, out)
                    entry = self._tools[td.index] = (index, _delta_prefix(index, "input_json_delta",
                                                                          "partial_json"))
                    self._has_tools = True
                if td.arguments:
                    # Providers stream calls one after another; a late piece of an earlier call is
                    # still sent at its own index rather than lost (the SDK accumulates by index).
                    out.append(entry[1] + orjson.dumps(td.arguments) + b"}}\n\n")
        if chunk.usage is not None:
            out.append(self.finish(chunk.usage, None))
        return b"".join(out)

    def finish(self, usage: Usage | None, finish_reason: str | None = None) -> bytes:
        """Close the open block and end the message; b"" if the stream already ended."""
        if self._finished:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self.start())
        self._close_open(out)
        self._finished = True
        reason = _stop_reason(finish_reason or self._finish_reason, self._has_tools)
        out.append(_event(b"message_delta", {"type": "message_delta",
                                             "delta": {"stop_reason": reason, "stop_sequence": None},
                                             "usage": _usage(usage)}))
        out.append(_MESSAGE_STOP)
        return b"".join(out)
