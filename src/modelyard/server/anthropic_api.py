"""Anthropic Messages API format <-> the neutral types, so the official `anthropic` SDK (and every
client written against it) works with the gateway whatever provider actually answers.

Pure functions and one small state machine, no HTTP: server/app.py does the wiring. Untrusted input
is validated once, here, and every problem is a BadRequest whose message names the field path and
says what to send instead, because a 400 that only says "invalid request" costs the caller an hour.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..errors import BadRequest, ModelyardError
from ..types import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Part,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)

__all__ = ["StreamRenderer", "error_body", "error_event", "parse_request", "render_response"]

# --- request -------------------------------------------------------------------------------------

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
# Block types Anthropic clients send back in assistant turns that no other provider can use:
# accepted so multi-turn conversations from extended-thinking clients keep working, then dropped.
_DROPPED_ASSISTANT_BLOCKS = frozenset(("thinking", "redacted_thinking"))
_USER_BLOCKS = "'text', 'image' or 'tool_result'"
_ASSISTANT_BLOCKS = "'text' or 'tool_use'"


def _bad(param: str, message: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _str(obj: dict[str, Any], key: str, param: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _bad(param, "required, a string")
        return None
    if not isinstance(value, str):
        raise _bad(param, f"must be a string, got {_type_name(value)}")
    return value


def _number(body: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(key, f"must be a number between {lo:g} and {hi:g}, got {_type_name(value)}")
    if not lo <= value <= hi:
        raise _bad(key, f"must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def _int(body: dict[str, Any], key: str, lo: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, f"must be an integer >= {lo}, got {_type_name(value)}")
    if value < lo:
        raise _bad(key, f"must be an integer >= {lo}, got {value}")
    return value


def _block_text(block: dict[str, Any], param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad(f"{param}.text", f"required, a string (got {_type_name(text)})")
    return text


def _image(block: dict[str, Any], param: str) -> ImagePart:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad(f"{param}.source", "required, an object: {\"type\": \"base64\", \"media_type\": ..., "
                                      "\"data\": ...} or {\"type\": \"url\", \"url\": ...}")
    kind = source.get("type")
    if kind == "base64":
        media_type = _str(source, "media_type", f"{param}.source.media_type")
        data = _str(source, "data", f"{param}.source.data")
        return ImagePart(url=f"data:{media_type};base64,{data}")
    if kind == "url":
        return ImagePart(url=_str(source, "url", f"{param}.source.url") or "")
    raise _bad(f"{param}.source.type", f"must be 'base64' or 'url', got {kind!r}")


def _tool_result_text(content: Any, param: str) -> str:
    """A tool result's content as text: neutral tool messages carry text only."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(param, f"must be a string or a list of text blocks, got {_type_name(content)}")
    texts = []
    for j, block in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(block, dict):
            raise _bad(p, f"must be a content block object, got {_type_name(block)}")
        if block.get("type") != "text":
            raise _bad(f"{p}.type", f"must be 'text' (tool results are passed on as text), "
                                    f"got {block.get('type')!r}")
        texts.append(_block_text(block, p))
    return "\n".join(texts)


def _user_message(content: list[Any], param: str, out: list[Message]) -> None:
    """Tool results become role="tool" messages first; the rest of the turn a user message after."""
    parts: list[Part] = []
    for j, block in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(block, dict):
            raise _bad(p, f"must be a content block object, got {_type_name(block)}")
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(_block_text(block, p)))
        elif kind == "image":
            parts.append(_image(block, p))
        elif kind == "tool_result":
            tool_use_id = _str(block, "tool_use_id", f"{p}.tool_use_id")
            out.append(Message(role="tool", tool_call_id=tool_use_id,
                               content=_tool_result_text(block.get("content"), f"{p}.content")))
        elif kind == "tool_use":
            raise _bad(f"{p}.type", "'tool_use' blocks belong in assistant messages")
        else:
            raise _bad(f"{p}.type", f"unsupported content block type {kind!r} in a user message "
                                    f"(use {_USER_BLOCKS})")
    if parts:
        if len(parts) == 1 and isinstance(parts[0], TextPart):
            out.append(Message(role="user", content=parts[0].text))
        else:
            out.append(Message(role="user", content=parts))


def _assistant_message(content: list[Any], param: str) -> Message:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(block, dict):
            raise _bad(p, f"must be a content block object, got {_type_name(block)}")
        kind = block.get("type")
        if kind == "text":
            texts.append(_block_text(block, p))
        elif kind == "tool_use":
            call_id = _str(block, "id", f"{p}.id") or ""
            name = _str(block, "name", f"{p}.name") or ""
            args = block.get("input", {})
            if not isinstance(args, dict):
                raise _bad(f"{p}.input", f"must be an object, got {_type_name(args)}")
            calls.append(ToolCall(id=call_id, name=name, arguments=orjson.dumps(args).decode()))
        elif kind in _DROPPED_ASSISTANT_BLOCKS:
            continue
        elif kind == "tool_result":
            raise _bad(f"{p}.type", "'tool_result' blocks belong in user messages")
        else:
            raise _bad(f"{p}.type", f"unsupported content block type {kind!r} in an assistant message "
                                    f"(use {_ASSISTANT_BLOCKS})")
    return Message(role="assistant", content="".join(texts) if texts else None, tool_calls=calls or None)


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise _bad("messages", "must be a non-empty list of {\"role\": ..., \"content\": ...} objects")
    out: list[Message] = []
    for i, m in enumerate(raw):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(p, f"must be an object with 'role' and 'content', got {_type_name(m)}")
        role = m.get("role")
        if role not in ("user", "assistant"):
            hint = " (put system prompts in the top-level 'system' field)" if role == "system" else ""
            raise _bad(f"{p}.role", f"must be 'user' or 'assistant', got {role!r}{hint}")
        content = m.get("content")
        if isinstance(content, str):
            out.append(Message(role=role, content=content))
        elif isinstance(content, list) and content:
            if role == "user":
                _user_message(content, f"{p}.content", out)
            else:
                out.append(_assistant_message(content, f"{p}.content"))
        else:
            what = "an empty list" if isinstance(content, list) else _type_name(content)
            raise _bad(f"{p}.content", f"must be a string or a non-empty list of content blocks, got {what}")
    return out


def _system(raw: Any) -> Message | None:
    if isinstance(raw, str):
        return Message(role="system", content=raw) if raw else None
    if not isinstance(raw, list):
        raise _bad("system", f"must be a string or a list of text blocks, got {_type_name(raw)}")
    texts = []
    for j, block in enumerate(raw):
        p = f"system[{j}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(p, "must be a text block {\"type\": \"text\", \"text\": ...}")
        texts.append(_block_text(block, p))
    return Message(role="system", content="\n\n".join(texts)) if texts else None


def _tools(raw: Any) -> list[Tool] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _bad("tools", f"must be a list of tool definitions, got {_type_name(raw)}")
    tools = []
    for i, t in enumerate(raw):
        p = f"tools[{i}]"
        if not isinstance(t, dict):
            raise _bad(p, f"must be an object with 'name' and 'input_schema', got {_type_name(t)}")
        kind = t.get("type")
        if kind not in (None, "custom"):
            raise _bad(f"{p}.type", f"server tool {kind!r} is not supported through modelyard; "
                                    "define a custom tool with 'name' and 'input_schema'")
        name = _str(t, "name", f"{p}.name")
        if not name:
            raise _bad(f"{p}.name", "must be a non-empty string")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise _bad(f"{p}.input_schema", f"required, a JSON Schema object, got {_type_name(schema)}")
        tools.append(Tool(name=name, description=_str(t, "description", f"{p}.description", required=False),
                          parameters=schema))
    return tools or None


def _tool_choice(raw: Any, extra: dict[str, Any]) -> str | dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("tool_choice", f"must be an object like {{\"type\": \"auto\"}}, got {_type_name(raw)}")
    if raw.get("disable_parallel_tool_use") is True:
        extra["parallel_tool_calls"] = False
    kind = raw.get("type")
    if kind in _TOOL_CHOICE:
        return _TOOL_CHOICE[kind]
    if kind == "tool":
        name = _str(raw, "name", "tool_choice.name")
        return {"name": name}
    raise _bad("tool_choice.type", f"must be 'auto', 'any', 'tool' or 'none', got {kind!r}")


def _response_format(raw: Any) -> dict[str, Any] | None:
    """Structured outputs (`output_config.format`) in the neutral, OpenAI-shaped response_format."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("output_config", f"must be an object, got {_type_name(raw)}")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _bad("output_config.format", "must be {\"type\": \"json_schema\", \"schema\": {...}}")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _bad("output_config.format.schema", f"required, a JSON Schema object, got {_type_name(schema)}")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}


def parse_request(body: Any) -> ChatRequest:
    """Validate an Anthropic Messages request body and convert it to a ChatRequest.

    Unknown top-level fields are ignored so newer clients keep working; anything malformed in a
    field we use raises BadRequest naming its path.
    """
    if not isinstance(body, dict):
        raise BadRequest(f"body must be a JSON object, got {_type_name(body)}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "required, a non-empty string naming a model or model group")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        got = "" if max_tokens is None else f", got {max_tokens!r}"
        raise _bad("max_tokens", f"required, a positive integer{got}")

    messages = _messages(body.get("messages"))
    system = body.get("system")
    if system is not None:
        sys_msg = _system(system)
        if sys_msg is not None:
            messages.insert(0, sys_msg)

    extra: dict[str, Any] = {}
    top_k = _int(body, "top_k", 0)
    if top_k is not None:
        extra["top_k"] = top_k

    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _bad("stop_sequences", "must be a list of strings")
        stop = stop or None

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("stream", f"must be true or false, got {_type_name(stream)}")

    user = None
    metadata: dict[str, Any] = {}
    meta = body.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            raise _bad("metadata", f"must be an object, got {_type_name(meta)}")
        user = _str(meta, "user_id", "metadata.user_id", required=False)
        metadata = {k: v for k, v in meta.items() if k != "user_id"}
    hints = body.get("modelyard")
    if hints is not None:
        if not isinstance(hints, dict):
            raise _bad("modelyard", f"must be an object of routing hints, got {_type_name(hints)}")
        metadata.update(hints)

    return ChatRequest(
        model=model,
        messages=messages,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice"), extra),
        response_format=_response_format(body.get("output_config")),
        temperature=_number(body, "temperature", 0.0, 1.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        max_tokens=max_tokens,
        stop=stop,
        stream=stream,
        include_usage=stream,
        user=user,
        metadata=metadata,
        extra=extra,
    )


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
        message = {"id": self._message_id, "type": "message", "role": "assistant", "model": self._model,
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


# --- errors --------------------------------------------------------------------------------------

def error_event(err: ModelyardError) -> bytes:
    """An SSE error event, for failures after the first byte of a stream went out."""
    return _event(b"error", err.anthropic_body())


def error_body(err: ModelyardError) -> bytes:
    return orjson.dumps(err.anthropic_body())
