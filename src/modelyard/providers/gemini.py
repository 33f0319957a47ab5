"""Google AI Gemini adapter: ChatRequest -> generateContent JSON, JSON/SSE -> our types.

Gemini speaks in `contents` of `parts` with roles user/model, puts the system prompt in
`systemInstruction`, identifies tool results by function *name* (not call id), and describes
schemas with an OpenAPI subset. Tool calls get ids here; a call's thought signature (which
Gemini 3 wants back with the call) rides inside that id so clients round-trip it untouched.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..deployment import Deployment, Endpoint
from ..errors import (
    BadRequest,
    ContentPolicy,
    ContextWindowExceeded,
    ModelyardError,
    NotFound,
    RateLimited,
    Timeout,
    Unavailable,
    clamp_retry_after,
    error_for_status,
    upstream_auth,
)
from ..types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
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

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"
FILTERED = frozenset(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"))
SIGNATURE_SEP = "~ts~"  # call id = call_<hex>[~ts~<thought signature>]
# The OpenAPI-subset fields Gemini's Schema accepts; others (additionalProperties, $schema, ...) 400.
SCHEMA_KEYS = frozenset(("type", "format", "title", "description", "nullable", "enum", "items",
                         "minItems", "maxItems", "properties", "required", "minProperties",
                         "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum",
                         "anyOf", "propertyOrdering", "default", "example"))
_TOKEN_WORDING = re.compile(
    r"maximum number of tokens|token count|too many tokens|context (window|length)", re.IGNORECASE)


# --- request ------------------------------------------------------------------------------------

def schema_of(schema: Any) -> Any:
    """JSON Schema -> Gemini's OpenAPI subset: unknown keys dropped, ["x", "null"] -> nullable x."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            continue
        if key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if len(kinds) < len(value):
                out["nullable"] = True
            value = kinds[0] if kinds else "string"
        elif key == "properties" and isinstance(value, dict):
            value = {name: schema_of(s) for name, s in value.items()}
        elif key == "items":
            value = schema_of(value)
        elif key == "anyOf" and isinstance(value, list):
            value = [schema_of(s) for s in value]
        out[key] = value
    return out


def image_part(p: ImagePart) -> dict[str, Any]:
    if p.is_data_url:
        mime, data = p.split_data_url()
        return {"inline_data": {"mime_type": mime, "data": data}}
    mime = mimetypes.guess_type(urlsplit(p.url).path)[0] or "image/jpeg"
    return {"file_data": {"file_uri": p.url, "mime_type": mime}}


def parts_of(content: str | list[Part] | None) -> list[dict[str, Any]]:
    """Message content -> Gemini parts; empty text is dropped (the API rejects empty parts)."""
    if not content:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    return [image_part(p) if isinstance(p, ImagePart) else {"text": p.text}
            for p in content if isinstance(p, ImagePart) or p.text]


def function_call_part(call: ToolCall) -> dict[str, Any]:
    try:
        args = orjson.loads(call.arguments) if call.arguments and call.arguments.strip() else {}
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise BadRequest(f"tool call '{call.id}' ({call.name}) has arguments that are not a JSON object",
                         param="messages")
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
    _, sep, signature = call.id.partition(SIGNATURE_SEP)
    if sep and signature:
        part["thoughtSignature"] = signature
    return part


def function_response_part(m: Message, names: dict[str, str]) -> dict[str, Any]:
    """A tool result: Gemini matches it to its call by function name, found via the call id."""
    text = m.text()
    try:
        result: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        result = text
    name = names.get(m.tool_call_id or "") or m.name or ""
    return {"functionResponse": {"name": name, "response": {"content": result}}}


def to_contents(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Split off the system prompt and build user/model contents, merging same-role runs."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, from earlier assistant turns
    for m in messages:
        if m.role in ("system", "developer"):
            text = m.text()
            if text:
                system.append(text)
            continue
        if m.role == "tool":
            role, parts = "user", [function_response_part(m, names)]
        elif m.role == "assistant":
            role, parts = "model", parts_of(m.content)
            for call in m.tool_calls or ():
                names[call.id] = call.name
                parts.append(function_call_part(call))
        else:
            role, parts = "user", parts_of(m.content)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return "\n\n".join(system), contents


def tool_config_of(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI-style tool_choice -> toolConfig.functionCallingConfig."""
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "required": "ANY", "any": "ANY", "none": "NONE"}.get(choice)
        return {"functionCallingConfig": {"mode": mode}} if mode else None
    name = choice.get("name") or (choice.get("function") or {}).get("name")
    if not name:
        return None
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def generation_config(req: ChatRequest) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if req.temperature is not None:
        cfg["temperature"] = req.temperature
    if req.top_p is not None:
        cfg["topP"] = req.top_p
    if req.max_tokens:
        cfg["maxOutputTokens"] = req.max_tokens
    if req.stop:
        cfg["stopSequences"] = req.stop
    if req.seed is not None:
        cfg["seed"] = req.seed
    if req.n > 1:
        cfg["candidateCount"] = req.n
    rf = req.response_format or {}
    if rf.get("type") in ("json_object", "json_schema"):
        cfg["responseMimeType"] = "application/json"
        if rf["type"] == "json_schema":
            spec = rf.get("json_schema")
            schema = (spec.get("schema") if isinstance(spec, dict) else None) or rf.get("schema")
            if schema:
                cfg["responseSchema"] = schema_of(schema)
    return cfg


def to_wire(req: ChatRequest, dep: Deployment) -> dict[str, Any]:
    """The generateContent request body (the same for the streaming endpoint)."""
    try:
        system, contents = to_contents(req.messages)
    except BadRequest as e:  # name the deployment, as every error we raise does
        raise BadRequest(f"deployment '{dep.name}' cannot take this request: {e.message}",
                         param=e.param, deployment=dep.name) from None
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    cfg = generation_config(req)
    if cfg:
        body["generationConfig"] = cfg
    if req.tools:
        decls = []
        for t in req.tools:
            decl: dict[str, Any] = {"name": t.name}
            if t.description:
                decl["description"] = t.description
            if t.parameters.get("properties"):  # an empty OBJECT schema is rejected
                decl["parameters"] = schema_of(t.parameters)
            decls.append(decl)
        body["tools"] = [{"functionDeclarations": decls}]
        tool_config = tool_config_of(req.tool_choice)
        if tool_config:
            body["toolConfig"] = tool_config
    return body


# --- response -----------------------------------------------------------------------------------

def call_id(given: str | None, signature: str | None) -> str:
    """Gemini's own call id when it sent one, else a fresh one; plus the thought signature."""
    base = given or "call_" + secrets.token_hex(12)
    return f"{base}{SIGNATURE_SEP}{signature}" if signature else base


def finish_reason(reason: str | None, has_calls: bool) -> str | None:
    """Gemini finishReason -> OpenAI finish_reason (tool calls win over STOP)."""
    if reason is None:
        return None
    if reason in FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_calls else "stop"


def usage_of(u: dict[str, Any]) -> Usage:
    """usageMetadata -> Usage; hidden thinking is billed as output, so it counts there too."""
    thoughts = u.get("thoughtsTokenCount") or 0
    return checked_usage(Usage(
        input_tokens=(u.get("promptTokenCount") or 0) + (u.get("toolUsePromptTokenCount") or 0),
        output_tokens=(u.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=u.get("cachedContentTokenCount") or 0, reasoning_tokens=thoughts))


def split_parts(parts: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
    """A candidate's parts -> (visible text, tool calls); thought summaries are left out."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in parts:
        if "text" in part:
            if not part.get("thought"):
                texts.append(part["text"])
        elif "functionCall" in part:
            fc = part["functionCall"]
            calls.append(ToolCall(id=call_id(fc.get("id"), part.get("thoughtSignature")),
                                  name=fc.get("name") or "",
                                  arguments=orjson.dumps(fc.get("args") or {}).decode()))
    return "".join(texts), calls


def _blocked(data: dict[str, Any], dep: Deployment) -> ContentPolicy:
    feedback = data.get("promptFeedback") or {}
    reason = feedback.get("blockReason") or "unspecified"
    detail = feedback.get("blockReasonMessage")
    return ContentPolicy(f"deployment '{dep.name}' blocked the prompt ({reason})"
                         + (f": {upstream_text(detail, dep.endpoint)}" if detail else ""),
                         deployment=dep.name, code=str(reason))


def from_wire(data: dict[str, Any], dep: Deployment) -> ChatResponse:
    """A GenerateContentResponse -> ChatResponse (one choice per candidate)."""
    candidates = data.get("candidates") or []
    if not candidates:
        if (data.get("promptFeedback") or {}).get("blockReason"):
            raise _blocked(data, dep)
        raise bad_body(dep, "answered without candidates", orjson.dumps(data))
    choices = []
    for i, cand in enumerate(sorted(candidates, key=lambda c: c.get("index", 0))):
        text, calls = split_parts((cand.get("content") or {}).get("parts") or [])
        message = Message(role="assistant", content=text if text or not calls else None,
                          tool_calls=calls or None)
        finish = finish_reason(cand.get("finishReason"), bool(calls)) or ("tool_calls" if calls else "stop")
        choices.append(Choice(index=cand.get("index", i), message=message, finish_reason=finish))
    return ChatResponse(id=data.get("responseId") or new_response_id(),
                        model=data.get("modelVersion") or dep.model, choices=choices,
                        usage=usage_of(data.get("usageMetadata") or {}))


def new_response_id() -> str:
    return "gemini-" + secrets.token_hex(12)


# --- errors -------------------------------------------------------------------------------------

def retry_delay(details: Any) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail (`"retryDelay": "7s"`)."""
    for d in details if isinstance(details, list) else ():
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
            try:
                return clamp_retry_after(float(str(d.get("retryDelay", "")).rstrip("s")))
            except ValueError:
                return None
    return None


def _key_invalid(message: str, details: Any) -> bool:
    if "api key not valid" in message.lower() or "api key expired" in message.lower():
        return True
    return any(isinstance(d, dict) and d.get("reason") in ("API_KEY_INVALID", "API_KEY_EXPIRED")
               for d in (details if isinstance(details, list) else ()))


def map_error(dep: Deployment, status: int | None, err: dict[str, Any], headers: Any = None,
              mid_stream: bool = False) -> ModelyardError:
    """A Google API error object (`{"code","message","status","details"}`) -> the taxonomy."""
    gstatus = str(err.get("status") or "")
    raw_message = str(err.get("message") or "")
    details = err.get("details")
    code = err.get("code") if isinstance(err.get("code"), int) else None
    status = status or code
    if (gstatus in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403)
            or (status == 400 and _key_invalid(raw_message, details))):
        return upstream_auth(dep.name, status, gstatus or None)
    message = upstream_text(raw_message, dep.endpoint) or "no error message"
    where = "sent an error mid-stream" if mid_stream else f"answered {status}"
    text = f"deployment '{dep.name}' {where}: {gstatus + ': ' if gstatus else ''}{message}"
    kw: dict[str, Any] = {"deployment": dep.name, "upstream_status": status, "code": gstatus or None}
    if gstatus == "RESOURCE_EXHAUSTED" or status == 429:
        wait = retry_after_of(headers) if headers else None
        if wait is None:
            wait = retry_delay(details)
        return RateLimited(text, retry_after=wait, **kw)
    if gstatus == "INVALID_ARGUMENT" and _TOKEN_WORDING.search(message):
        return ContextWindowExceeded(text, **kw)
    if gstatus == "NOT_FOUND":
        return NotFound(text, **kw)
    if gstatus == "UNAVAILABLE" or status == 503:
        return Unavailable(text, **kw)
    if gstatus == "DEADLINE_EXCEEDED":
        return Timeout(text, **kw)
    if status is None:
        return Unavailable(text, **kw)
    return error_for_status(status, text, deployment=dep.name, code=gstatus or None)


def error_from_response(status: int, raw: bytes, headers: Any, dep: Deployment) -> ModelyardError:
    """A non-2xx answer -> the taxonomy, reading the `{"error": {...}}` body if there is one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:  # some Google front ends wrap the error in a list
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    log_body(dep, f"answered {status}", raw, level=logging.INFO)
    if not isinstance(err, dict):  # a body that is not the error shape is never shown
        err = {}
    return map_error(dep, status, err, headers)


# --- the adapter --------------------------------------------------------------------------------

class GeminiProvider(HttpProvider):
    """One pooled session for every Gemini deployment."""

    kind = "gemini"

    def endpoint(self, dep: Deployment) -> Endpoint:
        base = (dep.api_base or DEFAULT_BASE).rstrip("/")
        model = dep.model.removeprefix("models/")
        headers = {"content-type": "application/json"}
        if dep.api_key:
            headers["x-goog-api-key"] = dep.api_key
        headers.update(dep.headers)
        return make_endpoint(dep, f"{base}/models/{model}:generateContent", headers,
                             stream_url=f"{base}/models/{model}:streamGenerateContent?alt=sse")

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        ep = self.endpoint_of(dep)
        body = orjson.dumps(to_wire(req, dep))
        status, headers, raw = await self.post(dep, ep, ep.url, body)
        if status >= 300:
            raise error_from_response(status, raw, headers, dep)
        data = load_json(raw, dep)
        if not isinstance(data, dict):
            raise bad_body(dep, "returned JSON that is not a generateContent response", raw)
        if isinstance(data.get("error"), dict):
            log_body(dep, "reported an error in a 200 answer", raw)
            raise map_error(dep, None, data["error"], headers)
        try:
            return from_wire(data, dep)
        except MALFORMED:
            raise bad_body(dep, "returned JSON that is not a generateContent response", raw) from None

    def embeds(self, dep: Deployment) -> bool:
        return True

    async def embed(self, req: EmbeddingRequest, dep: Deployment) -> EmbeddingResponse:
        from .gemini_embed import embed

        return await embed(self, req, dep)

    async def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        ep = self.endpoint_of(dep)
        body = orjson.dumps(to_wire(req, dep))
        resp = await self.open_stream(dep, ep, ep.stream_url, body)
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
    """streamGenerateContent SSE fragments -> StreamChunks, then one closing chunk per candidate
    with its finish_reason; the very last one carries the usage."""
    resp_id, model = "", dep.model
    usage: dict[str, Any] = {}
    finishes: dict[int, str] = {}  # candidate index -> Gemini finishReason
    calls: dict[int, int] = {}  # candidate index -> tool calls seen so far
    started: set[int] = set()  # candidates that already sent their role
    async for _event, payload in sse_data(resp.read):
        data = load_json(payload, dep)
        if isinstance(data, list) and data:
            data = data[0]
        if not isinstance(data, dict):
            raise bad_body(dep, "sent a stream event that is not a JSON object", payload)
        if isinstance(data.get("error"), dict):
            log_body(dep, "sent an error event", payload, level=logging.INFO)
            raise map_error(dep, None, data["error"], mid_stream=True)
        resp_id = resp_id or data.get("responseId") or new_response_id()
        model = data.get("modelVersion") or model
        usage = data.get("usageMetadata") or usage
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            raise _blocked(data, dep)
        for i, cand in enumerate(candidates):
            index = cand.get("index", i)
            text, tool_calls = split_parts((cand.get("content") or {}).get("parts") or [])
            if cand.get("finishReason"):
                finishes[index] = cand["finishReason"]
            if not text and not tool_calls:
                continue
            deltas = None
            if tool_calls:
                first = calls.get(index, 0)
                calls[index] = first + len(tool_calls)
                deltas = [ToolCallDelta(index=first + n, id=c.id, name=c.name, arguments=c.arguments)
                          for n, c in enumerate(tool_calls)]
            role = None if index in started else "assistant"
            started.add(index)
            yield StreamChunk(id=resp_id, model=model, text=text or None, role=role,
                              tool_calls=deltas, index=index)
    if not finishes:
        raise bad_body(dep, "ended the stream before a finish reason")
    last = max(finishes)
    for index in sorted(finishes):
        yield StreamChunk(id=resp_id, model=model, index=index,
                          finish_reason=finish_reason(finishes[index], calls.get(index, 0) > 0),
                          usage=usage_of(usage) if index == last else None)
