"""The OpenAI Chat Completions format: parse and validate requests, render responses and streams.

Validation is hand-written rather than pydantic because it runs on every request; each problem
is a BadRequest that names the field (`messages[1].role`) and says what to send instead.
Upstream OpenAI-format bodies and SSE payloads are forwarded untouched when nothing needs to change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import BadRequest, ModelyardError
from ..types import (
    ROLES,
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
from . import validate
from .http import MAX_JSON_DEPTH, check_depth
from .validate import bad, integer, number, type_name

# Fields with a typed home in ChatRequest; any other key is forwarded to OpenAI-format upstreams.
_HANDLED = frozenset((
    "model", "messages", "tools", "tool_choice", "response_format", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "seed", "n", "stream", "stream_options", "user", "metadata",
    "modelyard", "functions", "function_call",
))
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
_ROLES = tuple(sorted(ROLES))
_PLAIN_ROLES = tuple(r for r in _ROLES if r != "tool")  # a tool message also names its tool call


def _parts(content: list[Any], where: str) -> list[Part]:
    parts: list[Part] = []
    for j, p in enumerate(content):
        pw = f"{where}[{j}]"
        if not isinstance(p, dict):
            raise bad(pw, f"must be a content part object, got {type_name(p)}")
        kind = p.get("type")
        if kind == "text":
            text = p.get("text")
            if not isinstance(text, str):
                raise bad(f"{pw}.text", "must be a string")
            parts.append(TextPart(text))
        elif kind == "image_url":
            iu = p.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if not isinstance(url, str) or not url:
                raise bad(f"{pw}.image_url.url", "must be an image URL or a data: URL")
            parts.append(ImagePart(url, iu.get("detail") if isinstance(iu, dict) else None))
        else:
            raise bad(f"{pw}.type", f"unsupported content part type {kind!r}; use 'text' or 'image_url'")
    return parts


def _tool_calls(raw: Any, where: str) -> list[ToolCall]:
    if not isinstance(raw, list):
        raise bad(where, "must be an array of tool calls")
    calls: list[ToolCall] = []
    for j, tc in enumerate(raw):
        tw = f"{where}[{j}]"
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad(f"{tw}.function.name", "each tool call needs a function with a name")
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = orjson.dumps(args).decode()
        elif args.count("{") + args.count("[") > MAX_JSON_DEPTH:  # parsed again by some adapters
            with contextlib.suppress(orjson.JSONDecodeError):
                check_depth(orjson.loads(args), f"{tw}.function.arguments")
        calls.append(ToolCall(id=str(tc.get("id") or f"call_{j}"), name=fn["name"], arguments=args))
    return calls


def _message(m: Any, i: int) -> Message:
    if isinstance(m, dict) and len(m) == 2:  # the common case: {"role": ..., "content": "..."}
        role, content = m.get("role"), m.get("content")
        if isinstance(content, str) and role in _PLAIN_ROLES:
            return Message(role, content)
    where = f"messages[{i}]"
    validate.message(m, where)
    role = validate.role(m.get("role"), _ROLES, f"{where}.role")
    content = m.get("content")
    if isinstance(content, list):
        content = _parts(content, f"{where}.content")
    elif content is not None and not isinstance(content, str):
        validate.content_kind(content, f"{where}.content", "content parts")
    msg = Message(role, content)
    name = m.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise bad(f"{where}.name", "must be a string")
        msg.name = name
    if role == "assistant" and m.get("tool_calls"):
        msg.tool_calls = _tool_calls(m["tool_calls"], f"{where}.tool_calls")
    elif content is None and role != "assistant":
        raise bad(f"{where}.content", "is required for this role")
    if role == "tool":
        tcid = m.get("tool_call_id")
        if not isinstance(tcid, str) or not tcid:
            raise bad(f"{where}.tool_call_id", "a tool message must name the tool call it answers")
        msg.tool_call_id = tcid
    return msg


def _tools(raw: Any) -> list[Tool]:
    tools: list[Tool] = []
    for i, t in enumerate(validate.tools(raw)):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad(f"tools[{i}].function.name", "each tool needs {'type': 'function', 'function': {'name': ...}}")
        params = validate.schema(fn.get("parameters") or {"type": "object", "properties": {}},
                                 f"tools[{i}].function.parameters")
        tools.append(Tool(fn["name"], fn.get("description"), params))
    return tools


def parse_request(body: Any) -> ChatRequest:
    """Validate an OpenAI chat-completions body and build the neutral request."""
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type_name(body)}")
    model = validate.model(body)
    raw_msgs = validate.messages(body)
    req = ChatRequest(model=model, messages=[_message(m, i) for i, m in enumerate(raw_msgs)])
    if len(body) == 2:
        return req
    extra = False
    for key, value in body.items():  # each field is validated only when it was sent
        field = _FIELDS.get(key)
        if field is not None:
            if value is not None:
                field(req, value, body)
        elif key not in _HANDLED:
            extra = True
    for key in ("metadata", "modelyard"):  # in this order: `modelyard` wins
        v = body.get(key)
        if v is not None:
            req.metadata.update(validate.obj(v, key))
    if extra:
        req.extra = {k: v for k, v in body.items() if k not in _HANDLED}
    return req


def _tool_choice(req: ChatRequest, tc: Any, body: dict[str, Any]) -> None:
    if isinstance(tc, str):
        if tc not in ("auto", "none", "required"):
            raise bad("tool_choice", f"must be 'auto', 'none', 'required' or a function object, got {tc!r}")
        req.tool_choice = tc
    elif isinstance(tc, dict) and isinstance(tc.get("function"), dict) and tc["function"].get("name"):
        req.tool_choice = {"name": tc["function"]["name"]}
    else:
        raise bad("tool_choice",
                   "must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}")


def _response_format(req: ChatRequest, rf: Any, body: dict[str, Any]) -> None:
    if not isinstance(rf, dict) or rf.get("type") not in _RESPONSE_FORMATS:
        raise bad("response_format.type", f"must be one of {', '.join(_RESPONSE_FORMATS)}")
    if rf["type"] == "json_schema" and not isinstance(rf.get("json_schema"), dict):
        raise bad("response_format.json_schema", "required with type 'json_schema': {'name': ..., 'schema': {...}}")
    req.response_format = None if rf["type"] == "text" else rf


def _max_tokens(req: ChatRequest, v: Any, body: dict[str, Any]) -> None:
    if body.get("max_completion_tokens") is None:  # the newer name wins when both are sent
        req.max_tokens = integer(body, "max_tokens", 1)


def _stop(req: ChatRequest, stop: Any, body: dict[str, Any]) -> None:
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise bad("stop", "must be a string or an array of up to 4 strings")
    req.stop = stop or None


def _stream(req: ChatRequest, stream: Any, body: dict[str, Any]) -> None:
    req.stream = validate.boolean(stream, "stream")


def _stream_options(req: ChatRequest, so: Any, body: dict[str, Any]) -> None:
    if not isinstance(so, dict):
        raise bad("stream_options", "must be an object such as {'include_usage': true}")
    req.include_usage = bool(so.get("include_usage"))


def _user(req: ChatRequest, user: Any, body: dict[str, Any]) -> None:
    if not isinstance(user, str):
        raise bad("user", "must be a string")
    req.user = user


def _set_tools(req: ChatRequest, tools: Any, body: dict[str, Any]) -> None:
    req.tools = _tools(tools) or None


def _set_temperature(req: ChatRequest, v: Any, body: dict[str, Any]) -> None:
    req.temperature = number(body, "temperature", 0, 2)


def _set_top_p(req: ChatRequest, v: Any, body: dict[str, Any]) -> None:
    req.top_p = number(body, "top_p", 0, 1)


def _set_max_completion_tokens(req: ChatRequest, v: Any, body: dict[str, Any]) -> None:
    req.max_tokens = integer(body, "max_completion_tokens", 1)


def _set_seed(req: ChatRequest, v: Any, body: dict[str, Any]) -> None:
    req.seed = integer(body, "seed", -(2**63), 2**63 - 1)


def _set_n(req: ChatRequest, v: Any, body: dict[str, Any]) -> None:
    req.n = integer(body, "n", 1, 16) or 1


# The fields with a typed home that are validated one by one, each only when it was sent (and not
# null); `metadata`/`modelyard` are merged after them, in that order.
_FIELDS: dict[str, Callable[[ChatRequest, Any, dict[str, Any]], None]] = {
    "tools": _set_tools, "tool_choice": _tool_choice, "response_format": _response_format,
    "temperature": _set_temperature, "top_p": _set_top_p, "max_tokens": _max_tokens,
    "max_completion_tokens": _set_max_completion_tokens, "seed": _set_seed, "n": _set_n, "stop": _stop,
    "stream": _stream, "stream_options": _stream_options, "user": _user,
}


# --- responses -------------------------------------------------------------------------------

def _usage_dict(u: Usage) -> dict[str, Any]:
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}}


def _tool_calls_wire(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def response_dict(resp: ChatResponse) -> dict[str, Any]:
    choices = []
    for c in resp.choices:
        content = c.message.text() if c.message.content is not None else None
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if c.message.tool_calls:
            msg["tool_calls"] = _tool_calls_wire(c.message.tool_calls)
        choices.append({"index": c.index, "message": msg, "finish_reason": c.finish_reason, "logprobs": None})
    return {"id": resp.id, "object": "chat.completion", "created": resp.created, "model": resp.model,
            "choices": choices, "usage": _usage_dict(resp.usage),
            "system_fingerprint": resp.system_fingerprint}


def render_response(resp: ChatResponse) -> bytes:
    """The body for a non-streamed response: the upstream's own bytes when it spoke OpenAI."""
    if resp.openai_body is not None and resp.modelyard is None:
        return resp.openai_body
    d = response_dict(resp)
    if resp.modelyard is not None:
        d["modelyard"] = resp.modelyard
    return orjson.dumps(d)


def error_body(err: ModelyardError) -> bytes:
    return orjson.dumps(err.openai_body())


DONE = b"data: [DONE]\n\n"


def render_chunk(chunk: StreamChunk, include_usage: bool, extra: dict[str, Any] | None = None) -> bytes:
    """SSE bytes for one neutral chunk ("" when the client should not see it).

    `extra` (the gateway's cost/deployment summary) is attached to the usage chunk.
    """
    usage_only = chunk.usage_only
    if usage_only and not include_usage:
        return b""
    if chunk.openai_sse is not None and not (usage_only and extra):
        return chunk.openai_sse
    if usage_only:
        obj: dict[str, Any] = {"id": chunk.id, "object": "chat.completion.chunk", "created": chunk.created,
                               "model": chunk.model, "choices": [], "usage": _usage_dict(chunk.usage)}  # type: ignore[arg-type]
        if extra:
            obj["modelyard"] = extra
        return b"data: " + orjson.dumps(obj) + b"\n\n"
    delta: dict[str, Any] = {}
    if chunk.role:
        delta["role"] = chunk.role
    if chunk.text is not None:
        delta["content"] = chunk.text
    if chunk.tool_calls:
        delta["tool_calls"] = [
            {"index": t.index, **({"id": t.id, "type": "function"} if t.id else {}),
             "function": {**({"name": t.name} if t.name else {}), "arguments": t.arguments}}
            for t in chunk.tool_calls
        ]
    obj = {"id": chunk.id, "object": "chat.completion.chunk", "created": chunk.created, "model": chunk.model,
           "choices": [{"index": chunk.index, "delta": delta, "finish_reason": chunk.finish_reason,
                        "logprobs": None}]}
    out = b"data: " + orjson.dumps(obj) + b"\n\n"
    if chunk.usage is not None and include_usage and not usage_only:
        # the adapter put usage on the finishing chunk: send it as OpenAI does, in its own chunk
        u = StreamChunk(id=chunk.id, model=chunk.model, created=chunk.created, usage=chunk.usage)
        out += render_chunk(u, include_usage, extra)
    return out


def error_event(err: ModelyardError) -> bytes:
    """A failure after the stream started: the OpenAI SDKs raise on an `error` payload."""
    return b"data: " + orjson.dumps(err.openai_body()) + b"\n\n"
