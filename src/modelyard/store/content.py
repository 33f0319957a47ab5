"""Prompts and answers in the request log: kept only where a virtual key, a model group or the
default opts in; redacted and bounded before they reach a row.

Who opts in is settled at start-up into two flags per request to read: the key's `log_content`
(carried on its `Caller`, built once per key) and its group's (a dict built here from the config),
the most specific one that is set deciding — a key's `false` keeps its prompts out even of a group
that logs, a key's `true` logs them in any group; unset, the group's setting, then
`server.request_log.log_content`. With logging off nothing is serialised: the request path pays one
attribute read and one dict lookup.

What is kept (`prompt`, `response` columns): the messages as JSON, and the answer as JSON assistant
messages (one per choice, tool calls included; a stream's assembled from its chunks, as far as the
client got). Every string passes through `errors.redact` — the deployments' keys, header secrets
and the master key by value, anything credential-shaped by pattern — before serialisation (so a
key split by JSON escaping is still found). Inline images (data URLs) are replaced by their type
and size. A field longer than `max_content_chars` is cut and ends with a marker saying so; the
work per request is bounded by that limit too (strings past it are not redacted, only dropped).
`store/retention.py` clears both columns after `content_retention_days`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError, redact
from ..types import ChatRequest, ChatResponse, ImagePart, Message, StreamChunk, TextPart, ToolCall

if TYPE_CHECKING:
    from ..config import Config
    from ..deployment import Deployment
    from .rows import Row

log = logging.getLogger("modelyard.request_log")

MIN_SECRET = 8  # shorter configured values are not worth a replace (and would mangle ordinary text)
MAX_PENDING = 1000  # rows waiting for their content; past it, content is built on the caller's thread


class ContentLog:
    """The content-logging decision and the builders of the two columns."""

    __slots__ = ("_pending", "_pool", "default", "groups", "limit", "secrets")

    def __init__(self, default: bool, groups: dict[str, bool], secrets: Iterable[str] = (),
                 limit: int = 32_768) -> None:
        self.default = default
        self.groups = groups  # group name -> its explicit setting
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True))
        self.limit = limit
        self._pending: set[asyncio.Future[Row]] = set()
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def build(cls, cfg: Config, deployments: Mapping[str, Deployment]) -> ContentLog:
        """The policy of a config: its default and groups, and the secret values to redact."""
        groups = {name: g.log_content for name, g in cfg.model_groups.items() if g.log_content is not None}
        secrets: list[str] = []
        for d in deployments.values():
            secrets.append(d.api_key or "")
            secrets.extend(v for v in d.headers.values() if isinstance(v, str))
        secrets.append(os.environ.get("MODELYARD_MASTER_KEY", ""))
        if cfg.server.master_key:
            from ..secret_refs import resolve_secret

            try:
                secrets.append(resolve_secret(cfg.server.master_key, where="server.master_key") or "")
            except (ConfigError, OSError, ValueError):
                pass  # the server reports it when it starts; a library gateway never needs it
        log_cfg = cfg.server.request_log
        return cls(log_cfg.log_content, groups, secrets, log_cfg.max_content_chars)

    def wants(self, req: ChatRequest) -> bool:
        """Whether this request's prompt and answer are kept."""
        flag = req.caller.log_content
        if flag is None:
            return self.groups.get(req.model, self.default)
        return flag

    # --- off the event loop -----------------------------------------------------------------------
    def emit_with(self, emit: Callable[[Row], None], row: Row, req: ChatRequest,
                  answer: ChatResponse | list[StreamChunk] | None) -> None:
        """Fill `row`'s prompt and response in this log's own thread (redacting 32 KB of text takes
        milliseconds: not the event loop's time), then `emit` it on the loop. Without a running loop,
        or with MAX_PENDING rows already waiting, it is done here and now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or len(self._pending) >= MAX_PENDING:
            emit(self.filled(row, req, answer))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-content")
        fut = loop.run_in_executor(self._pool, self.filled, row, req, answer)
        self._pending.add(fut)

        def done(f: asyncio.Future[Row]) -> None:
            self._pending.discard(f)
            if f.cancelled():
                emit(row)
            elif (e := f.exception()) is not None:  # never lose the row over its content
                log.error("request log: content of request %r not kept (%s: %s)", row.id, type(e).__name__, e)
                emit(row)
            else:
                emit(f.result())

        fut.add_done_callback(done)

    def filled(self, row: Row, req: ChatRequest, answer: ChatResponse | list[StreamChunk] | None) -> Row:
        prompt, response = self.fields(req, answer)
        return row._replace(prompt=prompt, response=response)

    async def close(self) -> None:
        """Emit every row still waiting for its content (before the request log closes)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
            await asyncio.sleep(0)  # (their done-callbacks emit on the next loop turn)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # --- the columns ----------------------------------------------------------------------------
    def fields(self, req: ChatRequest, answer: ChatResponse | list[StreamChunk] | None
               ) -> tuple[str | None, str | None]:
        """(prompt, response) for a request that `wants` them; the response None without an answer
        (errors, refusals, cancellations, cache hits)."""
        prompt = None
        if req.messages:
            room = _Room(self.limit)
            prompt = self.dump([self._message(m, room) for m in req.messages], room)
        if answer is None:
            return prompt, None
        room = _Room(self.limit)
        if isinstance(answer, ChatResponse):
            out = [self._message(c.message, room, c.finish_reason) for c in answer.choices]
        else:
            out = [self._message(m, room, f) for m, f in _assembled(answer)]
        return prompt, self.dump(out, room) if out else None

    def dump(self, data: Any, room: _Room) -> str:
        """The JSON text, at most `limit` characters: cut with a marker when the content was longer."""
        text = orjson.dumps(data).decode()
        if len(text) <= self.limit and not room.cut:
            return text
        mark = f"…[truncated: over {self.limit} characters]"
        return text[: self.limit - len(mark)] + mark

    def _clean(self, text: str, room: _Room) -> str:
        """Redacted, within what is left of the field: the work per request is bounded by the limit,
        whatever the client sent (the cut leaves room for a key straddling it; the final cut of the
        JSON removes that part anyway)."""
        keep = room.left + 512 if room.left > 0 else 0
        if len(text) > keep:
            text = text[:keep]
            room.cut = True
        room.left -= len(text)
        return redact(text, self.secrets) if text else text

    def _message(self, m: Message, room: _Room, finish_reason: str | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"role": m.role}
        c = m.content
        if isinstance(c, str):
            d["content"] = self._clean(c, room)
        elif c is not None:
            d["content"] = [{"type": "text", "text": self._clean(p.text, room)} if isinstance(p, TextPart)
                            else {"type": "image", "url": self._image(p, room)} for p in c]
        if m.name:
            d["name"] = m.name
        if m.tool_calls:
            d["tool_calls"] = [{"id": t.id, "name": t.name, "arguments": self._clean(t.arguments, room)}
                               for t in m.tool_calls]
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        if finish_reason is not None:
            d["finish_reason"] = finish_reason
        return d

    def _image(self, p: ImagePart, room: _Room) -> str:
        if not p.is_data_url:
            return self._clean(p.url, room)
        media_type, data = p.split_data_url()
        return f"data:{media_type};base64,[{len(data)} characters not logged]"


class _Room:
    """What is left of one field while it is built, and whether anything was cut."""

    __slots__ = ("cut", "left")

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.cut = False


def _assembled(chunks: list[StreamChunk]) -> list[tuple[Message, str | None]]:
    """A stream's answer from its chunks: text joined and tool-call deltas merged, per choice."""
    texts: dict[int, list[str]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    finish: dict[int, str] = {}
    for ch in chunks:
        if ch.text:
            texts.setdefault(ch.index, []).append(ch.text)
        if ch.tool_calls:
            per = calls.setdefault(ch.index, {})
            for tc in ch.tool_calls:
                c = per.setdefault(tc.index, {"id": None, "name": None, "arguments": []})
                c["id"] = tc.id or c["id"]
                c["name"] = tc.name or c["name"]
                c["arguments"].append(tc.arguments)
        if ch.finish_reason:
            finish[ch.index] = ch.finish_reason
    out: list[tuple[Message, str | None]] = []
    for i in sorted({*texts, *calls}):
        msg = Message("assistant", "".join(texts[i]) if i in texts else None,
                      tool_calls=[ToolCall(c["id"] or "", c["name"] or "", "".join(c["arguments"]))
                                  for _, c in sorted(calls[i].items())] if i in calls else None)
        out.append((msg, finish.get(i)))
    return out
