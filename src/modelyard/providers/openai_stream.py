"""Reading an OpenAI chat-completions stream: the SSE events of each network read become as few
chunks as the protocol allows, forwarded as the bytes that arrived, and the usage object priced."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import orjson

from ..deployment import Deployment
from ..errors import (
    ModelyardError,
)
from ..types import StreamChunk, ToolCallDelta, Usage
from .base import MALFORMED, checked_usage
from .http import bad_body, log_body, upstream_text
from .openai_errors import error_from_payload
from .sse import sse_events


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
        # prompt_tokens_details.cache_write_tokens: the part of prompt_tokens written to the cache
        cache_write_tokens=details.get("cache_write_tokens") or 0,
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
