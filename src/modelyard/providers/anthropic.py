"""Anthropic Messages API adapter: ChatRequest -> /v1/messages JSON, JSON/SSE -> our types.

The Messages API differs from OpenAI's in ways the mapping has to absorb: the system prompt is a
top-level field, roles must alternate (so consecutive same-role messages are merged), tool
results travel as user content blocks, `max_tokens` is mandatory, and there is no JSON mode.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..deployment import Deployment, Endpoint
from ..errors import (
    BadRequest,
    ContextWindowExceeded,
    ModelyardError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Timeout,
    Unavailable,
    error_for_status,
    upstream_auth,
)
from ..types import (
    ChatRequest,
    ChatResponse,
    Choice,
    ImagePart,
    Message,
    Part,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .base import MALFORMED, checked_usage
from .http import (
    HttpProvider,
    bad_body,
    load_json,
    log_body,
    make_endpoint,
    retry_after_of,
    upstream_text,
)
from .sse import sse_data
from .streams import UpstreamStream
from .transport import transport_errors

DEFAULT_BASE = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic-only parameters a client may pass through `extra` (e.g. from the Anthropic-compatible API).
PASSTHROUGH = ("top_k", "thinking", "service_tier")
_CONTEXT_WORDING = re.compile(
    r"prompt is too long|context (window|limit|length)|too many (input )?tokens", re.IGNORECASE)


# --- request ------------------------------------------------------------------------------------

def finish_reason(stop_reason: str | None) -> str | None:
    """Anthropic stop_reason -> OpenAI finish_reason."""
    if stop_reason is None:
        return None
    return FINISH.get(stop_reason, "stop")


def content_blocks(content: str | list[Part] | None) -> list[dict[str, Any]]:
    """Message content -> Anthropic blocks; empty text is dropped (the API rejects it)."""
    if not content:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, ImagePart):
            if p.is_data_url:
                media_type, data = p.split_data_url()
                source = {"type": "base64", "media_type": media_type, "data": data}
            else:
                source = {"type": "url", "url": p.url}
            blocks.append({"type": "image", "source": source})
        elif p.text:
            blocks.append({"type": "text", "text": p.text})
    return blocks


def tool_input(call: ToolCall) -> dict[str, Any]:
    """The parsed arguments of a tool call: Anthropic wants an object, not a JSON string."""
    if not call.arguments or not call.arguments.strip():
        return {}
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise BadRequest(f"tool call '{call.id}' ({call.name}) has arguments that are not a JSON object",
                         param="messages")
    return value


def to_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Split off the system prompt and build alternating user/assistant messages."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.role
        if role in ("system", "developer"):
            text = m.text()
            if text:
                system.append(text)
            continue
        if role == "tool":
            result: str | list[dict[str, Any]] = m.text()
            if isinstance(m.content, list) and m.has_image():
                result = content_blocks(m.content)
            blocks: list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": m.tool_call_id or "",
                                             "content": result}]
            role = "user"
        else:
            blocks = content_blocks(m.content)
            if m.tool_calls:
                blocks.extend({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c)}
                              for c in m.tool_calls)
            role = "assistant" if role == "assistant" else "user"
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for msg in out:  # a lone text block travels as a plain string
        blocks = msg["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            msg["content"] = blocks[0]["text"]
    return "\n\n".join(system), out


def tool_choice_of(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI-style tool_choice -> Anthropic's object form."""
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"auto": {"type": "auto"}, "required": {"type": "any"}, "any": {"type": "any"},
                "none": {"type": "none"}}.get(choice)
    name = choice.get("name") or (choice.get("function") or {}).get("name")
    if name:
        return {"type": "tool", "name": name}
    if choice.get("type") in ("auto", "any", "none"):  # already in Anthropic form
        return {"type": choice["type"]}
    return None


def json_instruction(response_format: dict[str, Any] | None) -> str | None:
    """Anthropic has no JSON mode: ask for it in the system prompt instead."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "Respond with only a JSON object: no prose, no code fences."
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        schema = schema or response_format.get("schema")
        text = "Respond with only a JSON object: no prose, no code fences."
        if schema:
            text += " It must conform to this JSON schema:\n" + orjson.dumps(schema).decode()
        return text
    return None


def to_wire(req: ChatRequest, dep: Deployment, stream: bool | None = None) -> dict[str, Any]:
    """The Messages API request body; `stream` overrides `req.stream` when given."""
    try:
        system, messages = to_messages(req.messages)
    except BadRequest as e:  # name the deployment, as every error we raise does
        raise BadRequest(f"deployment '{dep.name}' cannot take this request: {e.message}",
                         param=e.param, deployment=dep.name) from None
    instruction = json_instruction(req.response_format)
    if instruction:
        system = f"{system}\n\n{instruction}" if system else instruction
    body: dict[str, Any] = {
        "model": dep.model,
        "messages": messages,
        "max_tokens": req.max_tokens or min(dep.card.max_output, DEFAULT_MAX_TOKENS),
    }
    if system:
        body["system"] = system
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)  # OpenAI allows up to 2, Anthropic up to 1
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.tools:
        tools = []
        for t in req.tools:
            tool: dict[str, Any] = {"name": t.name, "input_schema": t.parameters}
            if t.description:
                tool["description"] = t.description
            tools.append(tool)
        body["tools"] = tools
        choice = tool_choice_of(req.tool_choice)
        if req.extra.get("parallel_tool_calls") is False:
            choice = choice or {"type": "auto"}
            if choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
        if choice:
            body["tool_choice"] = choice
    if req.user:
        body["metadata"] = {"user_id": req.user}
    for key in PASSTHROUGH:
        if key in req.extra:
            body[key] = req.extra[key]
    if req.stream if stream is None else stream:
        body["stream"] = True
    return body


# --- response -----------------------------------------------------------------------------------

def usage_of(u: dict[str, Any]) -> Usage:
    """Anthropic counts cache reads and writes apart from `input_tokens`; we count them in. Writes
    are split by lifetime in `cache_creation` ({ephemeral_5m_input_tokens, ephemeral_1h_input_tokens},
    billed at 1.25x and 2x input); without that object every write is a 5-minute one."""
    cached = u.get("cache_read_input_tokens") or 0
    created = u.get("cache_creation_input_tokens") or 0
    split = u.get("cache_creation")
    hour = 0
    if isinstance(split, dict):
        hour = split.get("ephemeral_1h_input_tokens") or 0
        if not created:  # (the total is the sum of the split when only the split is sent)
            created = hour + (split.get("ephemeral_5m_input_tokens") or 0)
    usage = checked_usage(Usage(input_tokens=(u.get("input_tokens") or 0) + cached + created,
                                output_tokens=u.get("output_tokens") or 0, cached_input_tokens=cached,
                                cache_write_tokens=created, cache_write_1h_tokens=hour))
    if usage.cache_write_1h_tokens > usage.cache_write_tokens:
        raise ValueError("usage.cache_creation.ephemeral_1h_input_tokens is more than the cache writes")
    return usage


def from_wire(data: dict[str, Any], dep: Deployment) -> ChatResponse:
    """A Messages API response -> ChatResponse."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in data["content"]:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(ToolCall(id=block["id"], name=block["name"],
                                  arguments=orjson.dumps(block.get("input") or {}).decode()))
    text = "".join(texts)
    message = Message(role="assistant", content=text if text or not calls else None,
                      tool_calls=calls or None)
    finish = finish_reason(data.get("stop_reason")) or ("tool_calls" if calls else "stop")
    return ChatResponse(id=data.get("id") or "", model=data.get("model") or dep.model,
                        choices=[Choice(index=0, message=message, finish_reason=finish)],
                        usage=usage_of(data.get("usage") or {}))


# --- errors -------------------------------------------------------------------------------------

def map_error(dep: Deployment, status: int | None, etype: str, message: str,
              headers: Any = None, mid_stream: bool = False) -> ModelyardError:
    """An Anthropic error (HTTP status and/or error body type) -> the taxonomy. The client sees our
    wording, the status, the error type and the upstream's own (redacted) message."""
    if etype in ("authentication_error", "permission_error") or status in (401, 403):
        return upstream_auth(dep.name, status, etype or None)
    message = upstream_text(message, dep.endpoint)
    where = "sent an error mid-stream" if mid_stream else f"answered {status}"
    text = f"deployment '{dep.name}' {where}: {etype + ': ' if etype else ''}{message}"
    kw: dict[str, Any] = {"deployment": dep.name, "upstream_status": status, "code": etype or None}
    if etype == "overloaded_error" or status == 529:
        return Unavailable(text, **kw)
    if etype == "rate_limit_error" or status == 429:
        return RateLimited(text, retry_after=retry_after_of(headers) if headers else None, **kw)
    if etype == "invalid_request_error" and _CONTEXT_WORDING.search(message):
        return ContextWindowExceeded(text, **kw)
    if etype == "not_found_error":
        return NotFound(text, **kw)
    if etype == "request_too_large":
        return PayloadTooLarge(text, **kw)
    if etype in ("timeout_error", "gateway_timeout_error"):
        return Timeout(text, **kw)
    if etype == "api_error" or status is None:
        return Unavailable(text, **kw)
    if etype == "invalid_request_error" and status < 500:
        return BadRequest(text, **kw)
    return error_for_status(status, text, retry_after=retry_after_of(headers) if headers else None,
                            deployment=dep.name, code=etype or None)


def error_from_response(status: int, raw: bytes, headers: Any, dep: Deployment) -> ModelyardError:
    """A non-2xx answer -> the taxonomy, reading the `{"type":"error","error":{...}}` body if any."""
    etype, message = "", ""
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            etype, message = str(err.get("type") or ""), str(err.get("message") or "")
    except orjson.JSONDecodeError:
        pass
    log_body(dep, f"answered {status}", raw, level=logging.INFO)
    # A body that is not the error shape is never shown: only its status speaks.
    return map_error(dep, status, etype, message or "no error message", headers)


# --- the adapter --------------------------------------------------------------------------------

class AnthropicProvider(HttpProvider):
    """One pooled session for every Anthropic deployment."""

    kind = "anthropic"

    def endpoint(self, dep: Deployment) -> Endpoint:
        base = (dep.api_base or DEFAULT_BASE).rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        headers = {"anthropic-version": dep.api_version or DEFAULT_VERSION,
                   "content-type": "application/json"}
        if dep.api_key:
            headers["x-api-key"] = dep.api_key
        headers.update(dep.headers)
        return make_endpoint(dep, base + "/v1/messages", headers)

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        ep = self.endpoint_of(dep)
        body = orjson.dumps(to_wire(req, dep, stream=False))
        status, headers, raw = await self.post(dep, ep, ep.url, body)
        if status >= 300:
            raise error_from_response(status, raw, headers, dep)
        data = load_json(raw, dep)
        if not isinstance(data, dict):
            raise bad_body(dep, "returned JSON that is not a Messages API response", raw)
        if data.get("type") == "error":
            err = data.get("error") or {}
            log_body(dep, "reported an error in a 200 answer", raw)
            raise map_error(dep, status, str(err.get("type") or ""), str(err.get("message") or ""), headers)
        try:
            return from_wire(data, dep)
        except MALFORMED:
            raise bad_body(dep, "returned JSON that is not a Messages API response", raw) from None

    async def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        ep = self.endpoint_of(dep)
        body = orjson.dumps(to_wire(req, dep, stream=True))
        resp = await self.open_stream(dep, ep, ep.url, body)
        try:
            if resp.status >= 300:
                raise error_from_response(resp.status, await resp.body(), resp.headers, dep)
            with transport_errors(dep.name):
                try:
                    async for chunk in _events(resp, dep):
                        yield chunk
                except MALFORMED as e:  # a field of the wrong type: the upstream's fault, named
                    raise bad_body(dep, f"sent a malformed stream event ({upstream_text(e, ep, 120)})") from None
        finally:
            # the pool keeps the connection only if the body was read to its end; otherwise it is
            # dropped, which tells the upstream to stop generating (early stop, error, cancel)
            await resp.close()


async def _events(resp: UpstreamStream, dep: Deployment) -> AsyncIterator[StreamChunk]:
    """Messages API SSE events -> StreamChunks; the last one carries usage and finish_reason."""
    msg_id, model = "", dep.model
    counts: dict[str, Any] = {}  # the raw usage fields, message_start first, message_delta on top
    stop_reason: str | None = None
    tools: dict[int, int] = {}  # content block index -> tool call ordinal
    role: str | None = "assistant"  # sent once, with the first chunk
    done = False
    async for _event, payload in sse_data(resp.read):
        if done:
            continue  # drain whatever follows message_stop so the connection can be reused
        data = load_json(payload, dep)
        if not isinstance(data, dict):
            raise bad_body(dep, "sent a stream event that is not a JSON object", payload)
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                yield StreamChunk(id=msg_id, model=model, text=delta["text"], role=role)
                role = None
            elif dtype == "input_json_delta" and delta.get("partial_json"):
                ordinal = tools.get(data.get("index", -1), 0)
                yield StreamChunk(id=msg_id, model=model, role=role,
                                  tool_calls=[ToolCallDelta(index=ordinal, arguments=delta["partial_json"])])
                role = None
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                ordinal = len(tools)
                tools[data.get("index", ordinal)] = ordinal
                yield StreamChunk(id=msg_id, model=model, role=role, tool_calls=[
                    ToolCallDelta(index=ordinal, id=block.get("id"), name=block.get("name"))])
                role = None
            elif block.get("type") == "text" and block.get("text"):
                yield StreamChunk(id=msg_id, model=model, text=block["text"], role=role)
                role = None
        elif kind == "message_start":
            message = data.get("message") or {}
            msg_id = message.get("id") or msg_id
            model = message.get("model") or model
            counts.update(message.get("usage") or {})
        elif kind == "message_delta":
            stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
            # output_tokens is cumulative; newer API versions also repeat the final input counts
            counts.update((k, v) for k, v in (data.get("usage") or {}).items() if v is not None)
        elif kind == "message_stop":
            finish = finish_reason(stop_reason) or ("tool_calls" if tools else "stop")
            # the last chunk by the protocol: the client gets the end now, the body's end is read after
            yield StreamChunk(id=msg_id, model=model, finish_reason=finish, usage=usage_of(counts), last=True)
            done = True
        elif kind == "error":
            err = data.get("error") or {}
            log_body(dep, "sent an error event", payload, level=logging.INFO)
            raise map_error(dep, None, str(err.get("type") or ""), str(err.get("message") or ""),
                            mid_stream=True)
        # ping, content_block_stop and unknown future events carry nothing we need
    if not done:
        raise bad_body(dep, "ended the stream before message_stop")
