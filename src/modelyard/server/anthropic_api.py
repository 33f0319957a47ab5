"""Anthropic Messages API format <-> the neutral types, so the official `anthropic` SDK (and every
client written against it) works with the gateway whatever provider actually answers.

Pure functions, no HTTP: server/app.py does the wiring; anthropic_render.py writes responses
and streams. Untrusted input
is validated once, here, and every problem is a BadRequest whose message names the field path and
says what to send instead, because a 400 that only says "invalid request" costs the caller an hour.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import BadRequest, ModelyardError
from ..types import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
)
from . import validate
from .anthropic_render import StreamRenderer, message_id, render_response
from .validate import bad, integer, number, string, type_name

__all__ = ["StreamRenderer", "error_body", "error_event", "message_id", "parse_request", "render_response"]

# --- request -------------------------------------------------------------------------------------

_ROLES = ("user", "assistant")  # a system prompt goes in the top-level `system`
_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
# Block types Anthropic clients send back in assistant turns that no other provider can use:
# accepted so multi-turn conversations from extended-thinking clients keep working, then dropped.
_DROPPED_ASSISTANT_BLOCKS = frozenset(("thinking", "redacted_thinking"))
_USER_BLOCKS = "'text', 'image' or 'tool_result'"
_ASSISTANT_BLOCKS = "'text' or 'tool_use'"


def _block_text(block: dict[str, Any], param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise bad(f"{param}.text", f"required, a string (got {type_name(text)})")
    return text


def _image(block: dict[str, Any], param: str) -> ImagePart:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad(f"{param}.source", "required, an object: {\"type\": \"base64\", \"media_type\": ..., "
                                      "\"data\": ...} or {\"type\": \"url\", \"url\": ...}")
    kind = source.get("type")
    if kind == "base64":
        media_type = string(source, "media_type", f"{param}.source.media_type")
        data = string(source, "data", f"{param}.source.data")
        return ImagePart(url=f"data:{media_type};base64,{data}")
    if kind == "url":
        return ImagePart(url=string(source, "url", f"{param}.source.url") or "")
    raise bad(f"{param}.source.type", f"must be 'base64' or 'url', got {kind!r}")


def _tool_result_text(content: Any, param: str) -> str:
    """A tool result's content as text: neutral tool messages carry text only."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad(param, f"must be a string or a list of text blocks, got {type_name(content)}")
    texts = []
    for j, block in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(block, dict):
            raise bad(p, f"must be a content block object, got {type_name(block)}")
        if block.get("type") != "text":
            raise bad(f"{p}.type", f"must be 'text' (tool results are passed on as text), "
                                    f"got {block.get('type')!r}")
        texts.append(_block_text(block, p))
    return "\n".join(texts)


def _user_message(content: list[Any], param: str, out: list[Message]) -> None:
    """Tool results become role="tool" messages first; the rest of the turn a user message after."""
    parts: list[Part] = []
    for j, block in enumerate(content):
        p = f"{param}[{j}]"
        if not isinstance(block, dict):
            raise bad(p, f"must be a content block object, got {type_name(block)}")
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(_block_text(block, p)))
        elif kind == "image":
            parts.append(_image(block, p))
        elif kind == "tool_result":
            tool_use_id = string(block, "tool_use_id", f"{p}.tool_use_id")
            out.append(Message(role="tool", tool_call_id=tool_use_id,
                               content=_tool_result_text(block.get("content"), f"{p}.content")))
        elif kind == "tool_use":
            raise bad(f"{p}.type", "'tool_use' blocks belong in assistant messages")
        else:
            raise bad(f"{p}.type", f"unsupported content block type {kind!r} in a user message "
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
            raise bad(p, f"must be a content block object, got {type_name(block)}")
        kind = block.get("type")
        if kind == "text":
            texts.append(_block_text(block, p))
        elif kind == "tool_use":
            call_id = string(block, "id", f"{p}.id") or ""
            name = string(block, "name", f"{p}.name") or ""
            args = block.get("input", {})
            if not isinstance(args, dict):
                raise bad(f"{p}.input", f"must be an object, got {type_name(args)}")
            calls.append(ToolCall(id=call_id, name=name, arguments=orjson.dumps(args).decode()))
        elif kind in _DROPPED_ASSISTANT_BLOCKS:
            continue
        elif kind == "tool_result":
            raise bad(f"{p}.type", "'tool_result' blocks belong in user messages")
        else:
            raise bad(f"{p}.type", f"unsupported content block type {kind!r} in an assistant message "
                                    f"(use {_ASSISTANT_BLOCKS})")
    return Message(role="assistant", content="".join(texts) if texts else None, tool_calls=calls or None)


def _messages(body: dict[str, Any]) -> list[Message]:
    out: list[Message] = []
    for i, m in enumerate(validate.messages(body)):
        if isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in _ROLES:
            out.append(Message(role=m["role"], content=m["content"]))  # the common case
            continue
        p = f"messages[{i}]"
        validate.message(m, p)
        role = m.get("role")
        hint = " (put system prompts in the top-level 'system' field)" if role == "system" else ""
        validate.role(role, _ROLES, f"{p}.role", hint)
        content = m.get("content")
        if isinstance(content, str):
            out.append(Message(role=role, content=content))
        elif isinstance(content, list) and content:
            if role == "user":
                _user_message(content, f"{p}.content", out)
            else:
                out.append(_assistant_message(content, f"{p}.content"))
        else:
            validate.content_kind(content, f"{p}.content", "content blocks")
    return out


def _system(raw: Any) -> Message | None:
    if isinstance(raw, str):
        return Message(role="system", content=raw) if raw else None
    if not isinstance(raw, list):
        raise bad("system", f"must be a string or a list of text blocks, got {type_name(raw)}")
    texts = []
    for j, block in enumerate(raw):
        p = f"system[{j}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad(p, "must be a text block {\"type\": \"text\", \"text\": ...}")
        texts.append(_block_text(block, p))
    return Message(role="system", content="\n\n".join(texts)) if texts else None


def _tools(raw: Any) -> list[Tool] | None:
    if raw is None:
        return None
    tools = []
    for i, t in enumerate(validate.tools(raw)):
        p = f"tools[{i}]"
        if not isinstance(t, dict):
            raise bad(p, f"must be an object with 'name' and 'input_schema', got {type_name(t)}")
        kind = t.get("type")
        if kind not in (None, "custom"):
            raise bad(f"{p}.type", f"server tool {kind!r} is not supported through modelyard; "
                                    "define a custom tool with 'name' and 'input_schema'")
        name = string(t, "name", f"{p}.name")
        if not name:
            raise bad(f"{p}.name", "must be a non-empty string")
        schema = validate.schema(t.get("input_schema"), f"{p}.input_schema")
        tools.append(Tool(name=name, description=string(t, "description", f"{p}.description", required=False),
                          parameters=schema))
    return tools or None


def _tool_choice(raw: Any, extra: dict[str, Any]) -> str | dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad("tool_choice", f"must be an object like {{\"type\": \"auto\"}}, got {type_name(raw)}")
    if raw.get("disable_parallel_tool_use") is True:
        extra["parallel_tool_calls"] = False
    kind = raw.get("type")
    if kind in _TOOL_CHOICE:
        return _TOOL_CHOICE[kind]
    if kind == "tool":
        name = string(raw, "name", "tool_choice.name")
        return {"name": name}
    raise bad("tool_choice.type", f"must be 'auto', 'any', 'tool' or 'none', got {kind!r}")


def _response_format(raw: Any) -> dict[str, Any] | None:
    """Structured outputs (`output_config.format`) in the neutral, OpenAI-shaped response_format."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad("output_config", f"must be an object, got {type_name(raw)}")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise bad("output_config.format", "must be {\"type\": \"json_schema\", \"schema\": {...}}")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise bad("output_config.format.schema", f"required, a JSON Schema object, got {type_name(schema)}")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}


def parse_request(body: Any) -> ChatRequest:
    """Validate an Anthropic Messages request body and convert it to a ChatRequest.

    Unknown top-level fields are ignored so newer clients keep working; anything malformed in a
    field we use raises BadRequest naming its path.
    """
    if not isinstance(body, dict):
        raise BadRequest(f"body must be a JSON object, got {type_name(body)}")
    model = validate.model(body)
    max_tokens = integer(body, "max_tokens", 1, required=True)

    messages = _messages(body)
    system = body.get("system")
    if system is not None:
        sys_msg = _system(system)
        if sys_msg is not None:
            messages.insert(0, sys_msg)

    extra: dict[str, Any] = {}
    top_k = integer(body, "top_k", 0)
    if top_k is not None:
        extra["top_k"] = top_k

    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad("stop_sequences", "must be a list of strings")
        stop = stop or None

    stream = validate.stream(body)

    user = None
    metadata: dict[str, Any] = {}
    meta = body.get("metadata")
    if meta is not None:
        validate.obj(meta, "metadata")
        user = string(meta, "user_id", "metadata.user_id", required=False)
        metadata = {k: v for k, v in meta.items() if k != "user_id"}
    hints = body.get("modelyard")
    if hints is not None:
        metadata.update(validate.obj(hints, "modelyard", "an object of routing hints"))

    return ChatRequest(
        model=model,
        messages=messages,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice"), extra),
        response_format=_response_format(body.get("output_config")),
        temperature=number(body, "temperature", 0.0, 1.0),
        top_p=number(body, "top_p", 0.0, 1.0),
        max_tokens=max_tokens,
        stop=stop,
        stream=stream,
        include_usage=stream,
        user=user,
        metadata=metadata,
        extra=extra,
    )


# --- errors --------------------------------------------------------------------------------------

def error_event(err: ModelyardError) -> bytes:
    """An SSE error event, for failures after the first byte of a stream went out."""
    return b"event: error\ndata: " + orjson.dumps(err.anthropic_body()) + b"\n\n"


def error_body(err: ModelyardError) -> bytes:
    return orjson.dumps(err.anthropic_body())
