"""The OpenAI chat-completions wire protocol: OpenAI itself, Azure OpenAI and every compatible server
(vLLM, Ollama, Groq, Together, Mistral, DeepSeek, OpenRouter, ...), which differ only in URL and headers.

The OpenAI-format API of the gateway forwards this adapter's upstream bytes untouched
(`ChatResponse.openai_body`, `StreamChunk.openai_sse`), so the parsing here only extracts what the
gateway itself needs: text, tool calls, finish reason and usage.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..deployment import Deployment, Endpoint
from ..errors import (
    ConnectionFailed,
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
    Tool,
    ToolCall,
)
from .base import MALFORMED
from .http import (
    HttpProvider,
    bad_body,
    load_json,
    log_body,
    make_endpoint,
    post,
    upstream_text,
)
from .openai_errors import error_from_payload, json_instead_of_stream, map_error
from .openai_stream import merge_read, usage_from_wire
from .sse import sse_reads
from .transport import transport_errors

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
        ep = dep.endpoint or self.endpoint_of(dep)
        status, headers, raw = await post(self._http, dep, ep, ep.url, orjson.dumps(to_wire(req, dep, stream=False)))
        if status >= 400:
            raise map_error(status, raw, headers, dep)
        return from_wire(raw, dep)

    def embeds(self, dep: Deployment) -> bool:
        return True  # any OpenAI-compatible server may: the config decides which deployments embed

    async def embed(self, req: EmbeddingRequest, dep: Deployment) -> EmbeddingResponse:
        from .openai_embed import embed

        return await embed(self, req, dep)

    async def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        ep = self.endpoint_of(dep)
        resp = await self.open_stream(dep, ep, ep.url, orjson.dumps(to_wire(req, dep, stream=True)))
        try:
            if resp.status >= 400:
                raise map_error(resp.status, await resp.body(), resp.headers, dep)
            if resp.content_type == "application/json":  # an error (or a server ignoring `stream`)
                raise json_instead_of_stream(await resp.body(), resp.headers, dep)
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
    resp._wire = choices
    resp._built = None  # built from `_wire` when first read
    return resp


class WireResponse(ChatResponse):
    """A ChatResponse whose choices are built from the upstream's parsed ones when first read: the
    OpenAI-format API forwards the body as it came, so most answers never need them as objects."""

    __slots__ = ("_built", "_wire")
    _built: list[Choice] | None
    _wire: list[dict[str, Any]]

    @property
    def choices(self) -> list[Choice]:
        built = self._built
        if built is None:
            built = self._built = [choice_from_wire(c, i) for i, c in enumerate(self._wire)]
        return built

    @choices.setter
    def choices(self, value: list[Choice]) -> None:
        self._built = value

    def wire_choices(self) -> list[dict[str, Any]] | None:
        return self._wire if self._built is None else None


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
