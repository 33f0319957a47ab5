"""What the simulated fleet says: a pure function of the request (model, messages, options),
checked against the deployment's card first."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import orjson

from ...deployment import Deployment
from ...errors import BadRequest, ContextWindowExceeded
from ...tokens import count_message_tokens, count_tokens, count_tools_tokens
from ...types import ChatRequest, Message, Tool, ToolCall, Usage
from .compose import _compose, _sentence
from .profile import _Profile
from .schema import _Hints, _value
from .tools import _after_tool, _forced_tool, _mentioned_tools
from .words import _task_of, _topic


@dataclass(slots=True)
class _Reply:
    """One choice of an answer, before timing."""

    text: str | None
    tool_calls: list[ToolCall] | None
    finish_reason: str

    @property
    def output_tokens(self) -> int:
        if self.tool_calls:
            return sum(count_tokens(c.arguments) for c in self.tool_calls)
        return count_tokens(self.text or "")



# --- what gets said --------------------------------------------------------------------------------

def _answer(req: ChatRequest, dep: Deployment, prof: _Profile) -> tuple[list[_Reply], Usage]:
    """The replies (one per choice) and their usage; a pure function of the request."""
    _check_request(req, dep)
    input_tokens = count_message_tokens(req.messages) + count_tools_tokens(req.tools)
    if input_tokens > dep.card.context_window:
        raise ContextWindowExceeded(
            f"deployment '{dep.name}' (simulated): the prompt is {input_tokens} tokens, more than the "
            f"model's context window of {dep.card.context_window}; shorten it or use a larger model",
            deployment=dep.name, upstream_status=400, code="context_length_exceeded")
    ctx = _Context(req, dep, prof)
    replies: list[_Reply] = []
    for i in range(max(1, req.n)):
        reply = ctx.reply(i)
        for retry in range(1, 6):  # n > 1: each choice says something different
            if reply.text is None or all(reply.text != r.text for r in replies):
                break
            reply = ctx.reply(i + 1000 * retry)
        replies.append(reply)
    output = sum(r.output_tokens for r in replies)
    return replies, Usage(input_tokens=input_tokens, output_tokens=output)


def _check_request(req: ChatRequest, dep: Deployment) -> None:
    caps = dep.card.capabilities
    missing = None
    if "vision" not in caps and any(m.has_image() for m in req.messages):
        missing = "vision", "image inputs"
    elif "tools" not in caps and req.tools:
        missing = "tools", "tools"
    elif "json" not in caps and req.response_format and req.response_format.get("type") != "text":
        missing = "json", "response_format JSON modes"
    if missing:
        raise BadRequest(f"deployment '{dep.name}' (simulated) does not support {missing[1]} "
                         f"(its catalog card lacks the '{missing[0]}' capability)",
                         deployment=dep.name, upstream_status=400, param=missing[0])


class _Context:
    """Everything the answer is built from, derived once per request."""

    def __init__(self, req: ChatRequest, dep: Deployment, prof: _Profile) -> None:
        self.req, self.dep, self.prof = req, dep, prof
        self.last = req.messages[-1] if req.messages else Message("user", "")
        self.user_text = next((m.text() for m in reversed(req.messages) if m.role == "user"), "")
        self.instructions = (req.system_text() + "\n" + self.user_text).lower()
        self.digest = _digest(req, dep.model)
        self.task = _task_of(self.user_text)

    def rng(self, index: int, salt: str = "") -> random.Random:
        """Per-choice content randomness: depends on the model and the request, nothing else."""
        return random.Random(int.from_bytes(hashlib.blake2b(
            self.digest + f"/{index}/{salt}".encode(), digest_size=8).digest(), "big"))

    def consensus_rng(self, salt: str) -> random.Random:
        """Randomness shared by every model: what all "good" answers agree on."""
        return random.Random(int.from_bytes(hashlib.blake2b(
            (self.user_text + "\x00" + salt).encode(), digest_size=8).digest(), "big"))

    def is_good(self, index: int) -> bool:
        q = self.prof.quality if self.prof.quality is not None else self.dep.card.quality_for(self.task)
        return self.rng(index, "quality").random() < q

    def reply(self, index: int) -> _Reply:
        req = self.req
        forced = _forced_tool(req) if self.last.role == "user" else None
        if forced:
            return self._tool_reply(index, forced)
        if self.last.role == "user":
            for key, value in self.prof.answers:
                if key in self.user_text:
                    return self._finish(value)
            if req.tools and req.tool_choice != "none":
                mentioned = _mentioned_tools(req.tools, self.user_text)
                if mentioned:
                    return self._tool_reply(index, mentioned)
        rf = req.response_format or {}
        if rf.get("type") in ("json_object", "json_schema"):
            return self._finish(self._json(index, rf))
        if self.last.role == "tool":
            return self._finish(_after_tool(self, index))
        return self._finish(_compose(self, index))

    def _tool_reply(self, index: int, tools: list[Tool]) -> _Reply:
        calls = []
        for k, tool in enumerate(tools):
            rng = self.rng(index, "tool:" + tool.name)
            args = _value(tool.parameters or {"type": "object"}, rng, _Hints(self.user_text), tool.name)
            call_id = "call_" + hashlib.blake2b(self.digest + f"/{index}/{k}".encode(), digest_size=12).hexdigest()
            calls.append(ToolCall(call_id, tool.name, orjson.dumps(args).decode()))
        return _Reply(None, calls, "tool_calls")

    def _json(self, index: int, rf: dict[str, Any]) -> str:
        rng, hints = self.rng(index, "json"), _Hints(self.user_text)
        schema = rf.get("json_schema", {}).get("schema") if rf.get("type") == "json_schema" else None
        if schema is None and rf.get("type") == "json_schema":
            schema = rf.get("schema")
        if not schema:
            topic = _topic(self.user_text) or "your request"
            obj: Any = {"answer": _sentence(self, index, topic), "topic": topic,
                        "confidence": round(0.6 + 0.39 * rng.random(), 2)}
        else:
            obj = _value(schema, rng, hints, "", root=schema)
        return orjson.dumps(obj).decode()

    def _finish(self, text: str) -> _Reply:
        """Apply stop sequences, then max_tokens, like a model generating token by token."""
        finish = "stop"
        for stop in self.req.stop or ():
            if stop and (i := text.find(stop)) >= 0:
                text = text[:i]
        limit = self.req.max_tokens
        if limit is not None and count_tokens(text) > limit:
            text, finish = _truncate(text, limit), "length"
        return _Reply(text, None, finish)


def _digest(req: ChatRequest, model: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(model.encode())
    for m in req.messages:
        h.update(b"\x1e" + m.role.encode() + b"\x1f" + m.text().encode())
        if m.has_image():
            h.update(b"\x1fimg")
        for c in m.tool_calls or ():
            h.update(b"\x1f" + c.name.encode() + c.arguments.encode())
    for t in req.tools or ():
        h.update(b"\x1dtool" + t.name.encode())
    if req.response_format:
        h.update(orjson.dumps(req.response_format, option=orjson.OPT_SORT_KEYS))
    if req.seed is not None:
        h.update(b"\x1dseed" + str(req.seed).encode())
    return h.digest()


def _truncate(text: str, limit: int) -> str:
    """The longest prefix of `text` that fits in `limit` tokens."""
    if limit <= 0:
        return ""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    while lo > 0 and count_tokens(text[:lo]) > limit:
        lo -= 1
    return text[:lo]
