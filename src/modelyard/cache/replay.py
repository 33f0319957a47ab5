"""Streams and the cache: record a live stream into a response, and replay a cached response as a
stream of neutral chunks, so the OpenAI and Anthropic renderers send a real SSE stream (text in
pieces, tool calls, the finish reason, then usage) exactly as they do for an upstream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from ..types import (
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    RouteDecision,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from ..deployment import Deployment

PIECE_WORDS = 8  # words per replayed text chunk: a stream a client renders like a live one


def _pieces(text: str) -> Iterator[str]:
    words = text.split(" ")
    for i in range(0, len(words), PIECE_WORDS):
        piece = " ".join(words[i:i + PIECE_WORDS])
        yield piece if i + PIECE_WORDS >= len(words) else piece + " "


def chunks(resp: ChatResponse) -> list[StreamChunk]:
    """The neutral chunks of a whole response; the last carries usage (and `last`)."""
    rid, model, created = resp.id, resp.model, resp.created
    out: list[StreamChunk] = []
    for c in resp.choices:
        m = c.message
        out.append(StreamChunk(id=rid, model=model, role="assistant", text="", index=c.index, created=created,
                               flush=False))
        text = m.text() if m.content is not None else ""
        for piece in _pieces(text) if text else ():
            out.append(StreamChunk(id=rid, model=model, text=piece, index=c.index, created=created, flush=False))
        for j, t in enumerate(m.tool_calls or ()):
            out.append(StreamChunk(id=rid, model=model, index=c.index, created=created, flush=False,
                                   tool_calls=[ToolCallDelta(j, t.id, t.name, t.arguments)]))
        out.append(StreamChunk(id=rid, model=model, finish_reason=c.finish_reason, index=c.index,
                               created=created, flush=False))
    out.append(StreamChunk(id=rid, model=model, usage=resp.usage, created=created, last=True))
    return out


class Recorder:
    """Collects a live stream's chunks into the response the cache stores."""

    __slots__ = ("_calls", "_finish", "_id", "_model", "_texts", "usage")

    def __init__(self) -> None:
        self._texts: dict[int, list[str]] = {}
        self._calls: dict[int, dict[int, list[str]]] = {}  # choice → tool index → [id, name, args...]
        self._finish: dict[int, str | None] = {}
        self._id = self._model = ""
        self.usage: Usage | None = None

    def see(self, chunk: StreamChunk) -> None:
        if not self._model:
            self._id, self._model = chunk.id, chunk.model
        i = chunk.index
        texts = self._texts.setdefault(i, [])
        if chunk.text:
            texts.append(chunk.text)
        for t in chunk.tool_calls or ():
            call = self._calls.setdefault(i, {}).setdefault(t.index, ["", ""])
            call[0] = t.id or call[0]
            call[1] = t.name or call[1]
            call.append(t.arguments)
        if chunk.finish_reason:
            self._finish[i] = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    def response(self, deployment: str, cost_usd: float) -> ChatResponse | None:
        """The whole answer, or None if a choice never finished or usage never came."""
        if self.usage is None or not self._texts or any(self._finish.get(i) is None for i in self._texts):
            return None
        choices = []
        for i in sorted(self._texts):
            calls = [ToolCall(c[0], c[1], "".join(c[2:])) for _, c in sorted(self._calls.get(i, {}).items())]
            text = "".join(self._texts[i])
            choices.append(Choice(i, Message("assistant", text if text or not calls else None,
                                             tool_calls=calls or None), self._finish[i]))
        resp = ChatResponse(id=self._id, model=self._model, choices=choices, usage=self.usage)
        resp.deployment, resp.cost_usd = deployment, cost_usd
        return resp


class CachedStream:
    """A cache hit served as a stream: the GatewayStream interface the server reads (deployment,
    decision, usage, cost, finish reason, iteration, aclose). `on_end(status, note)` writes its one
    log row."""

    def __init__(self, request_id: str, req: ChatRequest, resp: ChatResponse, dep: Deployment,
                 decision: RouteDecision, t0: float, on_end: Callable[[CachedStream, int, str | None], None]) -> None:
        self.request_id, self.req, self.deployment, self.decision = request_id, req, dep, decision
        self.cache, self.cache_similarity = resp.cache, resp.cache_similarity
        self.usage: Usage | None = resp.usage
        self.cost_usd = 0.0
        self.finish_reason = resp.choices[0].finish_reason if resp.choices else None
        self._chunks = chunks(resp)
        self._t0 = t0
        self.ttft_ms = (time.perf_counter() - t0) * 1000
        self._on_end = on_end
        self._done = False

    @property
    def latency_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        for chunk in self._chunks:
            yield chunk
        self._finish(200, None)

    def _finish(self, status: int, note: str | None) -> None:
        if not self._done:
            self._done = True
            self._on_end(self, status, note)

    async def aclose(self) -> None:
        self._finish(499, "client disconnected before the stream ended")
