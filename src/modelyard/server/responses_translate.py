"""The Responses API's request and response shapes ↔ the neutral chat types.

A Responses body becomes a `ChatRequest` (instructions → a system message, input items → messages,
function tools → tools, `text.format` → response_format, `max_output_tokens` → max_tokens), so
every provider and every route serves it. A `ChatResponse` becomes a `response` object whose output
is a message item (the text) and one `function_call` item per tool call. Conversations are kept
as plain JSON (`messages_json` / `messages_from_json`) for `previous_response_id`.

Everything the gateway cannot honour (built-in tools, background runs, `include`, reasoning
settings, conversations objects) is a 400 naming the field: never silently dropped.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..types import ChatRequest, ChatResponse, ImagePart, Message, Part, TextPart, Tool, ToolCall, Usage
from . import validate
from .validate import bad, integer, number, type_name

# Fields with no equivalent here: a 400 naming them when they ask for something.
_UNSUPPORTED = {
    "background": "background responses are not supported; omit it or send false",
    "include": "extra output data (include) is not supported; omit it",
    "reasoning": "reasoning settings are not supported across providers; omit it",
    "conversation": "conversation objects are not supported; chain responses with previous_response_id",
    "prompt": "stored prompt templates are not supported; send the input",
    "max_tool_calls": "max_tool_calls is not supported; omit it",
    "top_logprobs": "log probabilities are not supported; omit it",
    "stream_options": "stream_options is not supported; omit it",
}
_FORWARDED = ("prompt_cache_key", "service_tier")  # OpenAI-format upstreams take these as they are
_KNOWN = frozenset(("model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens",
                    "temperature", "top_p", "stream", "metadata", "store", "previous_response_id", "user",
                    "parallel_tool_calls", "truncation", "modelyard", "safety_identifier", *_FORWARDED,
                    *_UNSUPPORTED))
_INPUT_ROLES = ("user", "system", "developer", "assistant")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass(slots=True)
class ResponseParams:
    """What the response object echoes back, besides the answer."""

    model: str
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    text: dict[str, Any] = field(default_factory=lambda: {"format": {"type": "text"}})
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    parallel_tool_calls: bool = True
    user: str | None = None
    explain: bool = False


# --- request ----------------------------------------------------------------------------------

def check_fields(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key not in _KNOWN:
            raise bad(key, "unknown field for /v1/responses")
        if key in _UNSUPPORTED and value not in (None, False, [], {}):
            raise bad(key, _UNSUPPORTED[key])
    if body.get("truncation") not in (None, "disabled"):
        raise bad("truncation", "only 'disabled' is supported: an input over the context window is an error")


def _content(value: Any, where: str, role: str) -> str | list[Part]:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise bad(where, f"must be a string or a non-empty array of content parts, got {type_name(value)}")
    parts: list[Part] = []
    for j, p in enumerate(value):
        pw = f"{where}[{j}]"
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(p.get("text"), str):
                raise bad(f"{pw}.text", "must be a string")
            parts.append(TextPart(p["text"]))
        elif kind == "refusal":
            parts.append(TextPart(str(p.get("refusal") or "")))
        elif kind == "input_image" and role != "assistant":
            url = p.get("image_url")
            if not isinstance(url, str) or not url:
                raise bad(f"{pw}.image_url", "must be an image URL or a data: URL (file_id is not supported)")
            parts.append(ImagePart(url, p.get("detail") if p.get("detail") != "auto" else None))
        else:
            raise bad(f"{pw}.type", f"unsupported content part {kind!r}; use 'input_text' or 'input_image'")
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    return parts


def _items(value: Any) -> list[Message]:
    """Input items → messages; consecutive function calls join one assistant message."""
    if isinstance(value, str):
        return [Message("user", value)]
    if not isinstance(value, list) or not value:
        raise bad("input", f"must be a string or a non-empty array of input items, got {type_name(value)}")
    out: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad(where, f"must be an input item object, got {type_name(item)}")
        kind = item.get("type", "message")
        if kind == "message":
            role = validate.role(item.get("role"), _INPUT_ROLES, f"{where}.role")
            out.append(Message(role, _content(item.get("content"), f"{where}.content", role)))
        elif kind == "function_call":
            name, call_id = item.get("name"), item.get("call_id")
            if not isinstance(name, str) or not name or not isinstance(call_id, str) or not call_id:
                raise bad(where, "a function_call item needs 'call_id' and 'name'")
            args = item.get("arguments") or ""
            if not isinstance(args, str):
                args = orjson.dumps(args).decode()
            call = ToolCall(id=call_id, name=name, arguments=args)
            if out and out[-1].role == "assistant" and out[-1].tool_calls is not None:
                out[-1].tool_calls.append(call)
            elif out and out[-1].role == "assistant" and not out[-1].tool_calls:
                out[-1].tool_calls = [call]
            else:
                out.append(Message("assistant", None, tool_calls=[call]))
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise bad(f"{where}.call_id", "required: the call_id of the function_call this answers")
            if isinstance(output, list):
                output = _content(output, f"{where}.output", "tool")
                output = output if isinstance(output, str) else "".join(
                    p.text for p in output if isinstance(p, TextPart))
            if not isinstance(output, str):
                raise bad(f"{where}.output", "must be a string (the function's result)")
            out.append(Message("tool", output, tool_call_id=call_id))
        elif kind == "reasoning":
            continue  # a reasoning item passed back from an output: nothing to send on
        else:
            raise bad(f"{where}.type", f"unsupported input item {kind!r}; use 'message', 'function_call' "
                                       "or 'function_call_output'")
    return out


def _tools(value: Any) -> tuple[list[Tool], list[dict[str, Any]]]:
    if not isinstance(value, list):
        raise bad("tools", f"must be an array of tools, got {type_name(value)}")
    tools, echo = [], []
    for i, t in enumerate(value):
        kind = t.get("type") if isinstance(t, dict) else None
        if kind != "function":
            raise bad(f"tools[{i}].type", f"only function tools are supported here, got {kind!r} "
                                          "(built-in tools such as web_search or file_search are not)")
        name = t.get("name")
        if not isinstance(name, str) or not name:
            raise bad(f"tools[{i}].name", "required: the function's name")
        params = validate.schema(t.get("parameters") or {"type": "object", "properties": {}}, f"tools[{i}].parameters")
        tools.append(Tool(name, t.get("description"), params))
        echo.append({"type": "function", "name": name, "description": t.get("description"), "parameters": params,
                     "strict": bool(t.get("strict", True))})
    return tools, echo


def _tool_choice(value: Any) -> str | dict[str, Any]:
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"name": value["name"]}
    raise bad("tool_choice", "must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}")


def _text_format(value: Any) -> dict[str, Any] | None:
    fmt = value.get("format") if isinstance(value, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema, name = fmt.get("schema"), fmt.get("name")
        if not isinstance(schema, dict):
            raise bad("text.format.schema", "required with type 'json_schema': a JSON Schema object")
        if not isinstance(name, str) or not name:
            raise bad("text.format.name", "required with type 'json_schema'")
        js: dict[str, Any] = {"name": name, "schema": schema}
        if fmt.get("strict") is not None:
            js["strict"] = bool(fmt["strict"])
        if fmt.get("description"):
            js["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": js}
    raise bad("text.format.type", "must be 'text', 'json_object' or 'json_schema'")


def parse_request(body: Any) -> tuple[ChatRequest, ResponseParams]:
    """The chat request for this turn (without any earlier turns) and what the response echoes."""
    if not isinstance(body, dict):
        raise bad("body", f"must be a JSON object, got {type_name(body)}")
    check_fields(body)
    model = validate.model(body)
    p = ResponseParams(model=model)
    messages = _items(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad("instructions", "must be a string")
        p.instructions = instructions
    req = ChatRequest(model=model, messages=messages)
    if body.get("tools"):
        req.tools, p.tools = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        req.tool_choice = p.tool_choice = _tool_choice(body["tool_choice"])
        if isinstance(p.tool_choice, dict):
            p.tool_choice = {"type": "function", "name": p.tool_choice["name"]}
    if body.get("text") is not None:
        if not isinstance(body["text"], dict):
            raise bad("text", "must be an object such as {'format': {'type': 'json_schema', ...}}")
        req.response_format = _text_format(body["text"])
        p.text = {"format": body["text"].get("format") or {"type": "text"}}
    req.max_tokens = p.max_output_tokens = integer(body, "max_output_tokens", 1)
    req.temperature = p.temperature = number(body, "temperature", 0, 2)
    req.top_p = p.top_p = number(body, "top_p", 0, 1)
    req.stream = validate.stream(body)
    if body.get("store") is not None:
        p.store = validate.boolean(body["store"], "store")
    prev = body.get("previous_response_id")
    if prev is not None:
        if not isinstance(prev, str) or not prev.startswith("resp_"):
            raise bad("previous_response_id", "must be the id of a stored response (resp_...)")
        p.previous_response_id = prev
    if body.get("parallel_tool_calls") is not None:
        p.parallel_tool_calls = validate.boolean(body["parallel_tool_calls"], "parallel_tool_calls")
        if not p.parallel_tool_calls:
            req.extra["parallel_tool_calls"] = False
    for key in ("user", "safety_identifier"):
        v = body.get(key)
        if v is not None:
            if not isinstance(v, str):
                raise bad(key, "must be a string")
            req.user = p.user = v
    md = body.get("metadata")
    if md is not None:
        if not isinstance(md, dict) or len(md) > 16 or not all(isinstance(v, str) for v in md.values()):
            raise bad("metadata", "must be an object of at most 16 string values")
        p.metadata = md
        req.metadata.update(md)
    my = body.get("modelyard")
    if my is not None:
        req.metadata.update(validate.obj(my, "modelyard"))
        p.explain = bool(req.metadata.pop("explain", False))
    for key in _FORWARDED:
        if body.get(key) is not None:
            req.extra[key] = body[key]
    return req, p


def with_history(req: ChatRequest, p: ResponseParams, history: list[Message]) -> list[Message]:
    """The messages sent upstream: instructions, the earlier turns, this turn's input. The returned
    list (without instructions) is what a stored response keeps as its conversation."""
    turn = [*history, *req.messages]
    req.messages = ([Message("system", p.instructions)] if p.instructions else []) + turn
    return turn


# --- conversations as JSON (stored with a response) ------------------------------------------

def messages_json(messages: list[Message]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        c = m.content
        content: Any = c if c is None or isinstance(c, str) else [
            {"type": "text", "text": p.text} if isinstance(p, TextPart) else {"type": "image", "url": p.url,
                                                                             "detail": p.detail} for p in c]
        d: dict[str, Any] = {"role": m.role, "content": content}
        if m.tool_calls:
            d["tool_calls"] = [[t.id, t.name, t.arguments] for t in m.tool_calls]
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def messages_from_json(data: list[dict[str, Any]]) -> list[Message]:
    out = []
    for d in data:
        c = d.get("content")
        content: Any = c if c is None or isinstance(c, str) else [
            TextPart(p["text"]) if p["type"] == "text" else ImagePart(p["url"], p.get("detail")) for p in c]
        calls = [ToolCall(*t) for t in d["tool_calls"]] if d.get("tool_calls") else None
        out.append(Message(d["role"], content, tool_calls=calls, tool_call_id=d.get("tool_call_id")))
    return out


# --- response ---------------------------------------------------------------------------------

def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def function_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call.id or new_id("call"), "name": call.name,
            "arguments": call.arguments, "status": status}


def output_items(resp: ChatResponse) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    msg = resp.choices[0].message if resp.choices else Message("assistant", "")
    text = msg.text()
    if text or not msg.tool_calls:
        items.append(message_item(new_id("msg"), text))
    for call in msg.tool_calls or []:
        items.append(function_item(new_id("fc"), call))
    return items


def assistant_message(output: list[dict[str, Any]]) -> Message:
    """The output items as the assistant turn a follow-up request continues from."""
    text = "".join(c["text"] for it in output if it["type"] == "message" for c in it["content"])
    calls = [ToolCall(it["call_id"], it["name"], it["arguments"]) for it in output if it["type"] == "function_call"]
    return Message("assistant", text or (None if calls else ""), tool_calls=calls or None)


def usage_dict(u: Usage) -> dict[str, Any]:
    return {"input_tokens": u.input_tokens, "input_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "output_tokens": u.output_tokens, "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.input_tokens + u.output_tokens}


def response_object(rid: str, p: ResponseParams, status: str, output: list[dict[str, Any]], usage: Usage | None,
                    created: float | None = None, incomplete: str | None = None) -> dict[str, Any]:
    return {
        "id": rid, "object": "response", "created_at": int(created or time.time()), "status": status,
        "error": None, "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": p.instructions, "max_output_tokens": p.max_output_tokens, "model": p.model,
        "output": output, "parallel_tool_calls": p.parallel_tool_calls,
        "previous_response_id": p.previous_response_id, "reasoning": {"effort": None, "summary": None},
        "store": p.store, "temperature": p.temperature if p.temperature is not None else 1.0,
        "text": p.text, "tool_choice": p.tool_choice, "tools": p.tools,
        "top_p": p.top_p if p.top_p is not None else 1.0, "truncation": "disabled",
        "usage": usage_dict(usage) if usage is not None else None, "user": p.user, "metadata": p.metadata,
    }


def finish_status(finish_reason: str | None) -> tuple[str, str | None]:
    """(status, incomplete reason) for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", "max_output_tokens"
    if finish_reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None
