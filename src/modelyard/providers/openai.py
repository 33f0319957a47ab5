"""The OpenAI chat-completions wire protocol: OpenAI itself, Azure OpenAI and every compatible server
(vLLM, Ollama, Groq, Together, Mistral, DeepSeek, OpenRouter, ...), which differ only in URL and headers.

The OpenAI-format API of the gateway forwards this adapter's upstream bytes untouched
(`ChatResponse.openai_body`, `StreamChunk.openai_sse`), so the parsing here only extracts what the
gateway itself needs: text, tool calls, finish reason and usage.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from typing import Any

import orjson

from ..deployment import Deployment, Endpoint
from ..errors import (
    ConnectionFailed,
    ContentPolicy,
    ContextWindowExceeded,
    ModelyardError,
    RateLimited,
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
    Tool,
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
    sse_events,
    sse_reads,
    transport_errors,
    upstream_text,
)

OPENAI_BASE = "https://api.openai.com/v1"
AZURE_API_VERSION = "2024-10-21"
# OpenAI's reasoning models reject `max_tokens` and take `max_completion_tokens` instead.
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)
# How long to wait for the end of the body after `[DONE]`, so the connection can go back to the pool.
_DRAIN_S = 0.5


class OpenAIProvider(HttpProvider):
    """One pooled upstream client for all OpenAI-protocol deployments."""

    kind = "openai"

    def endpoint(self, dep: Deployment) -> Endpoint:
        """URL, full header set, timeout and the max-tokens field name."""
        base = (dep.api_base or ("" if dep.provider == "azure" else OPENAI_BASE)).rstrip("/")
        headers = {"content-type": "application/json"}
        if dep.provider == "azure":
            if not base:
                raise ValueError(f"deployment '{dep.name}': azure needs api_base (https://NAME.openai.azure.com)")
            version = dep.api_version or AZURE_API_VERSION
            url = f"{base}/openai/deployments/{dep.model}/chat/completions?api-version={version}"
            if dep.api_key:
                headers["api-key"] = dep.api_key
        else:
            url = f"{base}/chat/completions"
            if dep.api_key:
                headers["authorization"] = f"Bearer {dep.api_key}"
        headers.update(dep.headers)
        official = dep.provider == "azure" or not dep.api_base or "api.openai.com" in dep.api_base
        reasoning = official and any(_REASONING_MODEL.match(n) for n in (dep.model, dep.card.name))
        return make_endpoint(dep, url, headers,
                             max_tokens_key="max_completion_tokens" if reasoning else "max_tokens")

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        ep = self.endpoint_of(dep)
        status, headers, raw = await self.post(dep, ep, ep.url, orjson.dumps(to_wire(req, dep, stream=False)))
        if status >= 400:
            raise map_error(status, raw, headers, dep)
        return from_wire(raw, dep)

    async def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        ep = self.endpoint_of(dep)
        resp = await self.open_stream(dep, ep, ep.url, orjson.dumps(to_wire(req, dep, stream=True)))
        try:
            if resp.status >= 400:
                raise map_error(resp.status, await resp.body(), resp.headers, dep)
            if resp.content_type == "application/json":  # an error (or a server ignoring `stream`)
                raise _json_instead_of_stream(await resp.body(), resp.headers, dep)
            with transport_errors(dep.name):
                finished = False
                async for complete in sse_reads(resp.read):
                    chunks, error, done = merge_read(complete, dep)
                    for chunk in chunks:
                        if chunk.finish_reason:
                            finished = True
                    # The usage event (no choices) that follows the finish is the stream's last
                    # chunk by the protocol: end here and read `[DONE]` after the client has it all.
                    if chunks and error is None and (done or (finished and chunks[-1].usage_only)):
                        chunks[-1].flush, chunks[-1].last = False, True
                        done = True
                    for chunk in chunks:
                        yield chunk
                    if error is not None:
                        raise error
                    if done:
                        await resp.drain(_DRAIN_S)
                        return
                if not finished:
                    raise ConnectionFailed(f"deployment '{dep.name}' stream ended early", deployment=dep.name)
        finally:
            # Closing an unfinished response drops the socket, which tells the upstream to stop
            # generating: this runs on aclose(), cancellation and errors alike.
            await resp.close()


# --- request ------------------------------------------------------------------------------------

def to_wire(req: ChatRequest, dep: Deployment, *, stream: bool | None = None) -> dict[str, Any]:
    """The chat-completions request body for `req` on `dep` (`stream` defaults to `req.stream`)."""
    body: dict[str, Any] = {"model": dep.model, "messages": [wire_message(m) for m in req.messages]}
    if req.tools:
        body["tools"] = [wire_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        body["tool_choice"] = wire_tool_choice(req.tool_choice)
    if req.response_format is not None:
        body["response_format"] = req.response_format
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.max_tokens is not None:
        body[dep.endpoint.max_tokens_key if dep.endpoint else "max_tokens"] = req.max_tokens
    if req.stop is not None:
        body["stop"] = req.stop
    if req.seed is not None:
        body["seed"] = req.seed
    if req.user is not None:
        body["user"] = req.user
    if req.n != 1:
        body["n"] = req.n
    if req.extra:
        body.update(req.extra)
    if (req.stream if stream is None else stream):
        # Always ask for usage: the gateway prices every stream.
        body["stream"] = True
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    elif req.extra:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


def wire_message(m: Message) -> dict[str, Any]:
    c = m.content
    if c is None:
        content: Any = None if m.role == "assistant" else ""
    elif isinstance(c, str):
        content = c
    else:
        content = [wire_part(p) for p in c]
    out: dict[str, Any] = {"role": m.role, "content": content}
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
            for tc in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def wire_part(p: Part) -> dict[str, Any]:
    if isinstance(p, ImagePart):
        image: dict[str, Any] = {"url": p.url}
        if p.detail:
            image["detail"] = p.detail
        return {"type": "image_url", "image_url": image}
    return {"type": "text", "text": p.text}


def wire_tool(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description:
        fn["description"] = t.description
    fn["parameters"] = t.parameters
    return {"type": "function", "function": fn}


def wire_tool_choice(choice: str | dict[str, Any]) -> Any:
    """"auto"/"none"/"required" and OpenAI-shaped dicts pass; the neutral {"name": X} is wrapped."""
    if isinstance(choice, dict) and "type" not in choice and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


# --- response -----------------------------------------------------------------------------------

def from_wire(raw: bytes, dep: Deployment) -> ChatResponse:
    """A ChatResponse from a 200 body; the raw bytes ride along for the OpenAI-format API."""
    doc = load_json(raw, dep)
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or not all(type(c) is dict for c in choices):
        if isinstance(doc, dict) and doc.get("error"):  # OpenRouter reports late failures with a 200
            log_body(dep, "reported an error in a 200 answer", raw)
            raise error_from_payload(doc, dep)
        raise bad_body(dep, "returned a body without choices", raw)
    try:
        usage = usage_from_wire(doc.get("usage"))
    except MALFORMED as e:
        raise bad_body(dep, f"returned a malformed usage object ({upstream_text(e, dep.endpoint, 120)})",
                       raw) from None
    resp = WireResponse(
        id=doc.get("id") or "",
        model=doc.get("model") or dep.model,
        choices=[],
        usage=usage,
        created=doc.get("created") or int(time.time()),
        system_fingerprint=doc.get("system_fingerprint"),
        openai_body=raw,
    )
    resp.wire_choices = choices
    resp._built = None  # built from `wire_choices` when first read
    return resp


class WireResponse(ChatResponse):
    """A ChatResponse whose choices are built from the upstream's parsed ones when first read: the
    OpenAI-format API forwards the body as it came, so most answers never need them as objects."""

    __slots__ = ("_built", "wire_choices")
    _built: list[Choice] | None
    wire_choices: list[dict[str, Any]]

    @property  # type: ignore[override]  # (a dataclass field made a lazy property: mypy cannot follow)
    def choices(self) -> list[Choice]:
        built = self._built
        if built is None:
            built = self._built = [choice_from_wire(c, i) for i, c in enumerate(self.wire_choices)]
        return built

    @choices.setter
    def choices(self, value: list[Choice]) -> None:
        self._built = value


def choice_from_wire(c: dict[str, Any], i: int) -> Choice:
    m = c.get("message")
    if type(m) is not dict:
        m = {}
    calls = m.get("tool_calls")
    message = Message(role=m.get("role") or "assistant", content=m.get("content"),
                      tool_calls=[tool_call_from_wire(tc) for tc in calls] if calls else None)
    return Choice(index=c.get("index", i), message=message, finish_reason=c.get("finish_reason"))


def tool_call_from_wire(tc: dict[str, Any]) -> ToolCall:
    fn = tc.get("function") or {}
    args = fn.get("arguments")
    if not isinstance(args, str):  # some compatible servers send an object
        args = "" if args is None else orjson.dumps(args).decode()
    return ToolCall(id=tc.get("id") or "", name=fn.get("name") or "", arguments=args)


def usage_from_wire(u: dict[str, Any] | None) -> Usage:
    """The usage object; a malformed one (not an object, counts that are not whole numbers) raises
    TypeError or ValueError for the caller to report as the upstream's fault."""
    if not u:
        return Usage()
    details = u.get("prompt_tokens_details") or _EMPTY
    out_details = u.get("completion_tokens_details") or _EMPTY
    return checked_usage(Usage(
        input_tokens=u.get("prompt_tokens") or 0,
        output_tokens=u.get("completion_tokens") or 0,
        # DeepSeek reports its cache hits as prompt_cache_hit_tokens.
        cached_input_tokens=details.get("cached_tokens") or u.get("prompt_cache_hit_tokens") or 0,
        reasoning_tokens=out_details.get("reasoning_tokens") or 0,
    ))


_EMPTY: dict[str, Any] = {}


_DONE = b"data: [DONE]"
_BOUNDARY = b"\n\ndata: "


def merge_read(complete: bytes, dep: Deployment) -> tuple[list[StreamChunk], ModelyardError | None, bool]:
    """The chunks for the SSE events of one network read (see `sse_reads`), any error event among
    them, and whether the read ended with `[DONE]`.

    Events that are each one `data: {...}` line — what OpenAI and compatible servers send — are
    parsed with one JSON call for the whole read and forwarded as the bytes that arrived; anything
    else (comments, `event:` lines, multi-line data, a payload that is not JSON) goes event by event.
    """
    done = complete[-12:] == _DONE and (len(complete) == 12 or complete[-14:-12] == b"\n\n")
    body = complete[:-14] if done else complete  # 14: len(b"\n\ndata: [DONE]")
    if not body and done:  # the read brought the end alone
        return [], None, True
    if body[:6] == b"data: ":
        # With every boundary `\n\ndata: ` made a comma, the payloads are one JSON array. Any other
        # line (a comment, `event:`, a second `data:` line) is not JSON there, so parsing fails and
        # the read goes event by event; blank lines are JSON whitespace, as they are nothing in SSE.
        joined = body[6:].replace(_BOUNDARY, b",")
        try:
            docs = orjson.loads(b"".join((b"[", joined, b"]")))
        except orjson.JSONDecodeError:
            docs = None
        if type(docs) is list and len(docs) == (len(body) - 6 - len(joined)) // 7 + 1:
            slicer = _Slicer(body, len(docs))
            chunks, starts, error = merge_events(docs, slicer.event, dep)
            for chunk, sse in zip(chunks, slicer.spans(starts), strict=True):
                chunk.openai_sse = sse
            return chunks, error, done
    datas: list[bytes] = []
    events = sse_events(complete)
    for k, (_event, data) in enumerate(events):
        if data == b"[DONE]":  # the end; a stray one mid-read is skipped
            done = done or k == len(events) - 1
            continue
        datas.append(data)
    raws = [b"data: " + d.replace(b"\n", b"\ndata: ") for d in datas]
    chunks, starts, error = merge_events(datas, raws.__getitem__, dep)
    for chunk, (start, end) in zip(chunks, pairwise(starts), strict=True):
        chunk.openai_sse = (raws[start] if end - start == 1 else b"\n\n".join(raws[start:end])) + b"\n\n"
    return chunks, error, done


class _Slicer:
    """Event `i` of a read of one-line `data:` events, and the bytes of runs of them, found by
    searching from whichever end is nearer rather than splitting the read into every event."""

    __slots__ = ("body", "n")

    def __init__(self, body: bytes, n: int) -> None:
        self.body, self.n = body, n

    def start(self, i: int) -> int:
        body = self.body
        if i == 0:
            return 0
        if i <= self.n - i:
            pos = -2
            for _ in range(i):
                pos = body.find(_BOUNDARY, pos + 2)
        else:
            pos = len(body)
            for _ in range(self.n - i):
                pos = body.rfind(_BOUNDARY, 0, pos)
        return pos + 2

    def event(self, i: int) -> bytes:
        end = self.start(i + 1) - 2 if i + 1 < self.n else len(self.body)
        return self.body[self.start(i):end]

    def spans(self, starts: list[int]) -> list[bytes]:
        """The SSE of events starts[j]..starts[j+1] (each ending in its blank line), for each j."""
        body, n = self.body, self.n
        if len(starts) == 2 and starts[1] == n:  # usual: the whole read is one chunk
            return [body + b"\n\n"]
        out = []
        a = 0
        for i in starts[1:]:
            if i < n:  # a cut right after the blank line that ends event i - 1
                b = self.start(i)
                out.append(body[a:b])
                a = b
            else:  # the read's last event: its blank line was taken off by `sse_reads`
                out.append(body[a:] + b"\n\n")
        return out


def merge_events(events: list[Any], raw: Callable[[int], bytes], dep: Deployment
                 ) -> tuple[list[StreamChunk], list[int], ModelyardError | None]:
    """The chunks for SSE events that arrived together: consecutive events of the same choice become
    one chunk (texts joined, tool-call deltas in order), so the pipeline runs once per network read
    rather than once per token. A usage-only event stays a chunk of its own (the API may drop or
    annotate it), and text after tool calls starts a new one (renderers emit a chunk's text before
    its tool calls). Only the last chunk says `flush`.

    `events` are parsed payloads (dicts) or raw `data:` payloads (bytes, parsed here); `raw(i)` is
    event i as SSE. Returns the chunks, the index of each chunk's first event followed by the index
    after its last, and the error to raise: an error event ends the batch, after the chunks before it."""
    out: list[StreamChunk] = []
    starts: list[int] = []
    cur: StreamChunk | None = None
    for i, d in enumerate(events):
        if type(d) is not dict or d.get("error") or d.get("object") == "error":
            try:  # bytes to parse, or a parsed payload that is not a chunk: event_doc says which
                d = event_doc(d if type(d) is bytes else raw(i)[6:], dep)
            except ModelyardError as e:
                starts.append(i)
                return out, starts, e
        try:  # everything read from the event before anything is changed: a malformed one ends the batch
            u = d.get("usage")
            choices = d.get("choices")
            if choices:
                c = choices[0]
                delta = c.get("delta") or _EMPTY
                index, text, calls = c.get("index") or 0, delta.get("content"), delta.get("tool_calls")
                finish, role = c.get("finish_reason"), delta.get("role")
                if text is not None and type(text) is not str:
                    raise TypeError("content is not a string")
            else:
                index, text, calls, finish, role = 0, None, None, None, None
            deltas = [tool_call_delta_from_wire(tc, k) for k, tc in enumerate(calls)] if calls else None
            usage = usage_from_wire(u) if u else None
        except MALFORMED as e:
            starts.append(i)
            return out, starts, bad_body(
                dep, f"sent a malformed chat.completion.chunk ({upstream_text(e, dep.endpoint, 120)})", raw(i)[6:])
        if cur is not None:
            if ((u and text is None and not calls and finish is None) or cur.usage is not None
                    or index != cur.index or (text and cur.tool_calls)):
                cur.flush = False
                cur = None
            else:
                if text:
                    cur.text = text if cur.text is None else cur.text + text
                if deltas:
                    if cur.tool_calls is None:
                        cur.tool_calls = deltas
                    else:
                        cur.tool_calls.extend(deltas)
                if not cur.role:
                    cur.role = role
                if finish:
                    cur.finish_reason = finish
                if usage is not None:
                    cur.usage = usage
                continue
        cur = StreamChunk(id=d.get("id") or "", model=d.get("model") or dep.model, text=text, role=role,
                          tool_calls=deltas, finish_reason=finish, usage=usage,
                          index=index, created=d.get("created") or 0)
        out.append(cur)
        starts.append(i)
    starts.append(len(events))
    return out, starts, None


def event_doc(data: bytes, dep: Deployment) -> dict[str, Any]:
    """One `data:` payload as a dict; a payload that is not JSON, or reports an error, raises."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad_body(dep, "sent a stream event that is not JSON", data) from None
    if type(d) is not dict:
        raise bad_body(dep, "sent an unexpected stream event", data)
    if d.get("error") or d.get("object") == "error":
        log_body(dep, "sent an error event", data)
        raise error_from_payload(d, dep)
    return d


def tool_call_delta_from_wire(tc: dict[str, Any], i: int) -> ToolCallDelta:
    fn = tc.get("function") or {}
    args = fn.get("arguments")
    if not isinstance(args, str):
        args = "" if args is None else orjson.dumps(args).decode()
    index = tc.get("index")
    return ToolCallDelta(index=i if index is None else index, id=tc.get("id"), name=fn.get("name"),
                         arguments=args)


# --- errors -------------------------------------------------------------------------------------

def map_error(status: int, body: bytes, headers: Any, dep: Deployment) -> ModelyardError:
    """An upstream error answer as a taxonomy error naming the deployment (never the key)."""
    log_body(dep, f"answered {status}", body, level=logging.INFO)
    err = error_object(body)
    message = code = etype = None
    if err is not None:
        message, code, etype = err.get("message"), err.get("code"), err.get("type")
    # A body that is not a known error shape is never shown: only its status speaks.
    return classify(status, str(message or ""), code, etype, headers, dep, f"answered {status}")


def error_from_payload(doc: dict[str, Any], dep: Deployment) -> ModelyardError:
    """An error sent inside a 200 body or stream event (OpenAI, vLLM, OpenRouter shapes)."""
    err = doc.get("error")
    if not isinstance(err, dict):
        err = {"message": err} if isinstance(err, str) else doc
    code, etype = err.get("code"), err.get("type")
    status = _payload_status(code, etype)
    message = str(err.get("message") or "unknown error")
    return classify(status, message, code, etype, {}, dep, "reported an error")


def error_object(body: bytes) -> dict[str, Any] | None:
    """The `error` object of an error body, if the body is JSON in any of the common shapes."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    err = doc.get("error")
    if isinstance(err, dict):
        return err
    if isinstance(err, str):  # Ollama: {"error": "..."}
        return {"message": err}
    if "message" in doc:  # vLLM: {"object": "error", "message": ..., "type": ..., "code": 400}
        return doc
    return None


_TYPE_STATUS = {"rate_limit_error": 429, "rate_limit_exceeded": 429, "tokens": 429, "requests": 429,
                "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                "not_found_error": 404, "timeout": 408}


def _payload_status(code: Any, etype: Any) -> int:
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    return _TYPE_STATUS.get(code if isinstance(code, str) and code in _TYPE_STATUS else etype, 500)


_POLICY_CODES = frozenset(("content_filter", "content_policy_violation"))
_AUTH_TYPES = frozenset(("authentication_error", "permission_error", "invalid_api_key"))


def classify(status: int, message: str, code: Any, etype: Any, headers: Any, dep: Deployment,
             what: str) -> ModelyardError:
    """Pick the taxonomy class: by error code and message first, then by status. The client sees our
    wording, the status, the error type and the upstream's own (redacted) error message, if any."""
    code_s = code if isinstance(code, str) else None
    etype_s = etype if isinstance(etype, str) else None
    if status in (401, 403) or code_s == "invalid_api_key" or etype_s in _AUTH_TYPES:
        return upstream_auth(dep.name, status, etype_s or code_s)
    message = upstream_text(message, dep.endpoint)
    kind = f" [{etype_s}]" if etype_s and etype_s not in message else ""
    text = f"deployment '{dep.name}' {what}: {message or 'no error message'}{kind}"
    kw: dict[str, Any] = {"deployment": dep.name, "upstream_status": status, "code": code_s}
    if status == 429:
        return RateLimited(text, retry_after=retry_after_of(headers), **kw)
    lower = message.lower()
    if status < 500 and (code_s == "context_length_exceeded" or "context length" in lower
                         or "context_length_exceeded" in lower):
        return ContextWindowExceeded(text, **kw)
    if code_s in _POLICY_CODES or etype in _POLICY_CODES or "content management policy" in lower:
        return ContentPolicy(text, **kw)
    return error_for_status(status, text, retry_after=retry_after_of(headers), deployment=dep.name,
                            code=code_s)


def _json_instead_of_stream(raw: bytes, headers: Any, dep: Deployment) -> ModelyardError:
    doc = error_object(raw)
    if doc is not None:
        log_body(dep, "answered JSON instead of an event stream", raw, level=logging.INFO)
        return error_from_payload({"error": doc}, dep)
    return bad_body(dep, "answered JSON instead of an event stream", raw)
