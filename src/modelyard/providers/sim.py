"""The simulated fleet: in-process deployments that behave like real ones, without keys or network.

`make demo` and the test suite run the whole pipeline on it, so it is realistic where the gateway
can tell the difference and deterministic everywhere else:

- answers depend only on (model, messages, request options): the same request gets the same text,
  tool calls and usage, streamed or not; different tiers phrase things differently;
- usage is what `tokens.py` counts for the prompt and the reply, priced by the deployment's card;
- latency follows the card (time to first token, then tokens per second) with jitter, unless zero
  latency is asked for (`zero_latency=True`, `sim.zero_latency`, or MODELYARD_SIM_ZERO_LATENCY=1);
- failures (503) and rate limits (429, Retry-After 1 s) happen at the configured rates, drawn from
  the provider's own seeded `random.Random`, always before the first chunk;
- it honours the card: images need `vision`, tools need `tools`, JSON modes need `json`, and a
  prompt larger than the context window is refused — so routing mistakes show up as real errors.

How good an answer is follows the deployment's quality (`sim.quality`, else the card's prior for
the task): a "good" answer to a question with one right answer (arithmetic, multiple choice,
labels) is the one every good model agrees on; a poor one is drawn per model, and may be wrong.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import math
import operator
import os
import random
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..deployment import Deployment
from ..errors import BadRequest, ContextWindowExceeded, RateLimited, Unavailable
from ..tokens import count_message_tokens, count_tokens, count_tools_tokens
from ..types import ChatRequest, ChatResponse, Choice, Message, StreamChunk, Tool, ToolCall, ToolCallDelta, Usage
from .base import Provider

SIM_TIERS = ("sim/frontier", "sim/balanced", "sim/fast", "sim/local")
# The embedded fleet, as deployment configs (the default config and `make demo` use these).
SIM_FLEET: dict[str, dict[str, Any]] = {name: {"provider": "sim", "model": name} for name in SIM_TIERS}

_WORDS_PER_CHUNK = 3  # a streamed chunk carries a few tokens, as real upstreams do
_PREFILL_SPEEDUP = 40.0  # prompt tokens are read this many times faster than output is written


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# --- per-deployment profile (computed once, in prepare) ---------------------------------------

@dataclass(slots=True, frozen=True)
class _Profile:
    ttft_s: float
    tokens_per_s: float
    jitter: float
    failure_rate: float
    rate_limit_rate: float
    zero_latency: bool
    tier: str  # frontier | balanced | fast | local: how the deployment phrases its answers
    quality: float | None  # None: the card's prior for the task
    answers: tuple[tuple[str, str], ...]


def _tier_of(dep: Deployment) -> str:
    for tier in ("frontier", "balanced", "fast", "local"):
        if tier in dep.model:
            return tier
    q = dep.card.quality_for("general")
    return "frontier" if q >= 0.88 else "balanced" if q >= 0.78 else "fast" if q >= 0.65 else "local"


def _make_profile(dep: Deployment, zero_latency: bool) -> _Profile:
    s, card = dep.sim, dep.card
    return _Profile(
        ttft_s=max(0.0, (card.ttft_ms if s.ttft_ms is None else s.ttft_ms) / 1000.0),
        tokens_per_s=max(1e-3, card.tokens_per_s if s.tokens_per_s is None else s.tokens_per_s),
        jitter=min(max(s.jitter, 0.0), 0.95),
        failure_rate=s.failure_rate,
        rate_limit_rate=s.rate_limit_rate,
        zero_latency=zero_latency or s.zero_latency,
        tier=_tier_of(dep),
        quality=s.quality,
        answers=tuple(s.answers.items()),
    )


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


# --- the provider --------------------------------------------------------------------------------

class SimProvider(Provider):
    """In-process simulated deployments (kind "sim"): no HTTP, deterministic content."""

    kind = "sim"

    def __init__(self, seed: int | None = None, zero_latency: bool = False) -> None:
        self._rng = random.Random(seed)  # failures, jitter and response ids; content never uses it
        self.zero_latency = zero_latency or os.environ.get("MODELYARD_SIM_ZERO_LATENCY") == "1"
        # Each deployment's profile, computed when it is prepared (Deployments hash by identity).
        self._profiles: dict[Deployment, _Profile] = {}

    def prepare(self, dep: Deployment) -> None:
        prof = self._profiles[dep] = _make_profile(dep, self.zero_latency)
        dep.adapter = self
        dep.timeout_enforced = prof.zero_latency  # a simulation that never waits needs no timer

    def _profile(self, dep: Deployment) -> _Profile:
        prof = self._profiles.get(dep)
        if prof is None:  # a Deployment built by hand, never prepared
            prof = self._profiles[dep] = _make_profile(dep, self.zero_latency)
        return prof

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        prof = self._profile(dep)
        replies, usage = _answer(req, dep, prof)
        await self._fail_maybe(dep, prof)
        if not prof.zero_latency:
            await asyncio.sleep(self._ttft(prof, usage.input_tokens)
                                + self._jittered(prof, usage.output_tokens / prof.tokens_per_s))
        choices = [Choice(index=i, finish_reason=r.finish_reason,
                          message=Message("assistant", r.text, tool_calls=r.tool_calls))
                   for i, r in enumerate(replies)]
        return ChatResponse(id=self._new_id(), model=dep.model, choices=choices, usage=usage)

    async def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        prof = self._profile(dep)
        replies, usage = _answer(req, dep, prof)
        await self._fail_maybe(dep, prof)
        rid, created, model = self._new_id(), int(time.time()), dep.model
        per_token = 0.0
        if not prof.zero_latency:
            await asyncio.sleep(self._ttft(prof, usage.input_tokens))
            per_token = self._jittered(prof, 1.0 / prof.tokens_per_s)
        last = len(replies) - 1
        for i, reply in enumerate(replies):
            yield StreamChunk(id=rid, model=model, role="assistant", text="", index=i, created=created)
            for piece in _stream_pieces(reply):
                await asyncio.sleep(per_token * count_tokens(piece.text or piece.tool_text) if per_token else 0)
                yield StreamChunk(id=rid, model=model, text=piece.text, tool_calls=piece.tool_calls,
                                  index=i, created=created)
            yield StreamChunk(id=rid, model=model, finish_reason=reply.finish_reason, index=i,
                              created=created, usage=usage if i == last else None)

    # --- timing and failures ----------------------------------------------------------------
    def _jittered(self, prof: _Profile, seconds: float) -> float:
        return seconds * (1.0 + prof.jitter * (2.0 * self._rng.random() - 1.0))

    def _ttft(self, prof: _Profile, input_tokens: int) -> float:
        prefill = input_tokens / (prof.tokens_per_s * _PREFILL_SPEEDUP)
        return self._jittered(prof, prof.ttft_s + prefill)

    async def _fail_maybe(self, dep: Deployment, prof: _Profile) -> None:
        if not (prof.failure_rate or prof.rate_limit_rate):
            return
        u = self._rng.random()
        if u < prof.failure_rate:
            if not prof.zero_latency:  # an overloaded upstream takes a moment to say so
                await asyncio.sleep(self._jittered(prof, prof.ttft_s / 2))
            raise Unavailable(f"deployment '{dep.name}' (simulated) answered 503: the model is "
                              "overloaded, try again or use another deployment",
                              deployment=dep.name, upstream_status=503)
        if u < prof.failure_rate + prof.rate_limit_rate:
            raise RateLimited(f"deployment '{dep.name}' (simulated) answered 429: rate limit reached, "
                              "retry after 1 s", retry_after=1.0, deployment=dep.name, upstream_status=429)

    def _new_id(self) -> str:
        return f"chatcmpl-sim-{self._rng.getrandbits(96):024x}"


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


# --- streaming pieces --------------------------------------------------------------------------------

@dataclass(slots=True)
class _Piece:
    text: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    tool_text: str = ""


_STREAM_WORDS = re.compile(r"\s*\S+\s*|\s+")


def _stream_pieces(reply: _Reply) -> list[_Piece]:
    if reply.tool_calls:
        out = []
        for k, call in enumerate(reply.tool_calls):
            out.append(_Piece(tool_calls=[ToolCallDelta(k, id=call.id, name=call.name)], tool_text=call.name))
            args = call.arguments
            step = max(8, len(args) // 3 + 1)
            for j in range(0, len(args), step):
                part = args[j:j + step]
                out.append(_Piece(tool_calls=[ToolCallDelta(k, arguments=part)], tool_text=part))
        return out
    words = _STREAM_WORDS.findall(reply.text or "")
    return [_Piece(text="".join(words[j:j + _WORDS_PER_CHUNK]))
            for j in range(0, len(words), _WORDS_PER_CHUNK)]


# --- tools -----------------------------------------------------------------------------------------

def _forced_tool(req: ChatRequest) -> list[Tool] | None:
    """The tool the request forces (`required` or a named tool), if any."""
    tools, choice = req.tools, req.tool_choice
    if not tools or choice in (None, "auto", "none"):
        return None
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        named = [t for t in tools if t.name == name]
        return named or None
    if choice in ("required", "any"):
        text = _last_user_text(req)
        return _mentioned_tools(tools, text) or [_likeliest_tool(tools, _Hints(text))]
    return None


def _likeliest_tool(tools: Sequence[Tool], hints: _Hints) -> Tool:
    """When a call is required but no tool is named: the one whose parameters the prompt can fill."""
    def fit(tool: Tool) -> int:
        props = [p.lower() for p in (tool.parameters or {}).get("properties", {})]
        score = 0
        for p in props:
            if hints.caps and p in ("ticker", "symbol", "stock"):
                score += 2
            if (hints.places or hints.proper) and any(k in p for k in _PLACE_FIELDS):
                score += 1
            if (hints.emails and "email" in p) or (hints.urls and "url" in p):
                score += 2
        return score
    return max(tools, key=fit)  # max keeps the first of equals


def _last_user_text(req: ChatRequest) -> str:
    return next((m.text() for m in reversed(req.messages) if m.role == "user"), "")


_GENERIC_NAME_PARTS = _wordset("get set fetch list create update delete find search run call make do tool "
                                "query lookup look up current info data by for the")


def _mentioned_tools(tools: Sequence[Tool], text: str) -> list[Tool]:
    """Tools the prompt asks for: by name, by a distinctive part of the name, or by description."""
    low = text.lower()
    words = set(_WORD.findall(low))
    by_name, best, best_score = [], None, 1
    for t in tools:
        parts = [p.lower() for p in re.split(r"[_\-\s.]+|(?<=[a-z])(?=[A-Z])", t.name) if p]
        if t.name.lower() in low or " ".join(parts) in low:
            by_name.append(t)
            continue
        if any(p in words for p in parts if p not in _GENERIC_NAME_PARTS and len(p) >= 4):
            by_name.append(t)
            continue
        desc = {w for w in _WORD.findall((t.description or "").lower()) if w not in _STOP and len(w) >= 4}
        score = len(desc & words)
        if score > best_score:
            best, best_score = t, score
    return by_name[:3] or ([best] if best else [])


def _after_tool(ctx: _Context, index: int) -> str:
    """A text answer that uses the tool results after the last assistant turn."""
    msgs = ctx.req.messages
    names: dict[str, str] = {}
    for m in msgs:
        for c in m.tool_calls or ():
            names[c.id] = c.name
    results = []
    for m in reversed(msgs):
        if m.role != "tool":
            break
        results.append((names.get(m.tool_call_id or "", m.name or "the tool"), m.text()))
    results.reverse()
    rng = ctx.rng(index, "after-tool")
    facts = [_describe_result(name, text) for name, text in results]
    lead = {
        "frontier": ["Here's what I found. ", "I checked. ", ""],
        "balanced": ["Sure. ", "Got it. ", ""],
        "fast": [""],
        "local": ["Okay, so ", "Alright. "],
    }[ctx.prof.tier]
    text = rng.choice(lead) + " ".join(facts)
    if ctx.prof.tier in ("frontier", "balanced"):
        text += " " + rng.choice(["Let me know if you'd like more detail.", "Anything else you want me to check?",
                                  "Happy to dig further if needed."])
    return text.strip()


def _describe_result(tool: str, content: str) -> str:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and value:
        parts = []
        for k, v in list(value.items())[:5]:
            label = str(k).replace("_", " ").strip()
            shown = v if isinstance(v, (str, int, float, bool)) else orjson.dumps(v).decode()
            parts.append(f"the {label} is {shown}")
        return f"According to {tool}, " + _join(parts) + "."
    shown = content.strip() or "nothing"
    if len(shown) > 240:
        shown = shown[:237].rstrip() + "..."
    return f"{tool} returned {shown}" + ("" if shown.endswith((".", "!", "?")) else ".")


# --- JSON values from a schema -----------------------------------------------------------------------

_WORD = re.compile(r"[a-z][a-z'\-]*[a-z]|[a-z]")
_FIRST_NAMES = ("Alex Morgan", "Priya Shah", "Diego Ramos", "Mei Lin", "Sam Carter", "Amara Okafor", "Jonas Berg",
                "Lucia Romano", "Noah Kim", "Fatima Haddad")
_CITIES = ("Paris", "Tokyo", "Lisbon", "Toronto", "Nairobi", "Oslo", "Melbourne", "Seoul", "Chicago", "Madrid")
_WORDS = ("alpha", "harbor", "signal", "meadow", "copper", "lantern", "summit", "orbit", "willow", "ember")
_TEXT_FIELDS = ("query", "q", "search", "text", "prompt", "question", "input", "message", "content", "keywords",
                "term", "topic", "description", "summary", "body", "comment", "note", "notes", "reason")
_PLACE_FIELDS = ("city", "location", "place", "destination", "origin", "town", "region", "address", "where")


class _Hints:
    """Values a prompt offers for string fields: names, tickers, quotes, numbers, emails, URLs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.quoted = re.findall(r"[\"“']([^\"”']{2,80})[\"”']", text)
        self.emails = re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
        self.urls = re.findall(r"https?://\S+[^\s.,;:!?)]", text)
        self.dates = re.findall(r"\b\d{4}-\d{2}-\d{2}\b", text)
        self.numbers = [float(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", text)]
        self.caps = [w for w in re.findall(r"\b[A-Z]{2,5}\b", text) if w not in ("I", "AI", "OK", "USD", "EUR")]
        places = re.findall(r"\b(?:in|at|to|from|near)\s+([A-Z][a-zA-Z\-]+(?:\s[A-Z][a-zA-Z\-]+)?)", text)
        self.places = [p for p in places if p.split()[0] not in _CAP_STOP]
        self.proper = [w for w in re.findall(r"\b[A-Z][a-z][a-zA-Z\-]+\b", text) if w not in _CAP_STOP]
        self.names = [n for n in re.findall(r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+){1,2}\b", text)
                      if n.split()[0] not in _CAP_STOP]
        self.places += [_KNOWN_PLACES[w.lower()] for w in self.proper if w.lower() in _KNOWN_PLACES]
        self.keywords = _keywords(text)

    def string_for(self, field: str, rng: random.Random) -> str | None:
        f = field.lower()
        if "email" in f:
            return self.emails[0] if self.emails else "alex.morgan@example.com"
        if "url" in f or "link" in f or "website" in f:
            return self.urls[0] if self.urls else f"https://example.com/{rng.choice(_WORDS)}"
        if "date" in f or f in ("day", "when"):
            return self.dates[0] if self.dates else f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if f in ("ticker", "symbol", "stock", "code") or f.endswith("_symbol"):
            return self.caps[0] if self.caps else (self.proper[0].upper()[:4] if self.proper else "ACME")
        if f in ("zip", "zipcode", "zip_code", "postal_code", "postcode"):
            return f"{rng.randint(10000, 99999)}"
        if any(p in f for p in _PLACE_FIELDS) or f == "country":
            return self.places[0] if self.places else rng.choice(_CITIES)
        if f in ("name", "full_name", "person", "author", "user", "username", "customer", "owner"):
            if self.names:
                return self.names[0]
            return self.proper[0] if len(self.proper) == 1 else rng.choice(_FIRST_NAMES)
        if f in ("title", "subject", "headline"):
            return (" ".join(self.keywords[:3]).title() or rng.choice(_WORDS).title())
        if f in _TEXT_FIELDS:
            if self.quoted:
                return self.quoted[0]
            return _clip(self.text, 120) or rng.choice(_WORDS)
        if f in ("language", "lang", "locale"):
            return "en"
        if f == "id" or f.endswith("_id"):
            return f"{f[:-3] or 'id'}_{rng.getrandbits(32):08x}"
        if f in ("unit", "units"):
            return "celsius"
        if f in ("color", "colour"):
            return rng.choice(("red", "green", "blue", "amber", "teal"))
        if f in ("phone", "phone_number"):
            return f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
        return None


def _value(schema: Any, rng: random.Random, hints: _Hints, field: str, *, root: Any = None,
           depth: int = 0) -> Any:
    """A value that conforms to a JSON schema (the common subset models are asked for)."""
    if not isinstance(schema, dict) or depth > 8:
        return rng.choice(_WORDS)
    root = root if root is not None else schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _value(target, rng, hints, field, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or () if not (isinstance(o, dict) and o.get("type") == "null")]
        if options:
            return _value(options[0], rng, hints, field, root=root, depth=depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged["properties"].update(part.get("properties", {}))
                merged["required"] += part.get("required", [])
        return _value(merged, rng, hints, field, root=root, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _value(sub, rng, hints, name, root=root, depth=depth + 1) for name, sub in props.items()}
    if kind == "array":
        lo = int(schema.get("minItems", 1))
        hi = max(lo, min(int(schema.get("maxItems", 3)), lo + 3))
        items = schema.get("items") or {"type": "string"}
        singular = field[:-1] if field.endswith("s") else field
        out = [_value(items, rng, hints, singular, root=root, depth=depth + 1) for _ in range(rng.randint(lo, hi))]
        if out and all(isinstance(v, str) for v in out) and not (isinstance(items, dict) and items.get("enum")):
            out = list(dict.fromkeys(out))  # no repeated strings: ["python", "sql"], not ["python", "python"]
            spare = [w for w in _WORDS if w not in out]
            while len(out) < lo and spare:
                out.append(spare.pop(rng.randrange(len(spare))))
        return out
    if kind in ("integer", "number"):
        return _number(schema, kind, rng, hints, field)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng, hints, field)


def _number(schema: dict[str, Any], kind: str, rng: random.Random, hints: _Hints, field: str) -> int | float:
    f = field.lower()
    lo, hi = 0.0, 100.0
    if "age" in f:
        lo, hi = 18, 80
    elif "year" in f:
        lo, hi = 1990, 2025
    elif f in ("count", "quantity", "qty", "n", "limit", "number", "amount_items"):
        lo, hi = 1, 10
    elif "price" in f or "amount" in f or "cost" in f:
        lo, hi = 1, 500
    elif any(k in f for k in ("score", "confidence", "probability", "ratio")):
        lo, hi = 0, 1
    if "minimum" in schema:
        lo = float(schema["minimum"])
    if "exclusiveMinimum" in schema:
        lo = float(schema["exclusiveMinimum"]) + (1 if kind == "integer" else 1e-6)
    if "maximum" in schema:
        hi = float(schema["maximum"])
    if "exclusiveMaximum" in schema:
        hi = float(schema["exclusiveMaximum"]) - (1 if kind == "integer" else 1e-6)
    hi = max(hi, lo)
    fits = [n for n in hints.numbers if lo <= n <= hi and (kind == "number" or n == int(n))]
    if fits and f not in ("confidence", "score", "probability"):
        return int(fits[0]) if kind == "integer" else fits[0]
    if kind == "integer":
        ilo, ihi = math.ceil(lo), math.floor(hi)
        return rng.randint(ilo, ihi) if ilo <= ihi else ilo
    return round(lo + (hi - lo) * rng.random(), 2 if hi - lo > 1 else 3)


def _string(schema: dict[str, Any], rng: random.Random, hints: _Hints, field: str) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        value = hints.string_for("date", rng) or "2025-06-15"
    elif fmt == "date-time":
        value = (hints.string_for("date", rng) or "2025-06-15") + f"T{rng.randint(8, 18):02d}:00:00Z"
    elif fmt == "email":
        value = hints.string_for("email", rng) or "alex.morgan@example.com"
    elif fmt in ("uri", "url"):
        value = hints.string_for("url", rng) or "https://example.com"
    elif fmt == "uuid":
        h = f"{rng.getrandbits(128):032x}"
        value = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
    else:
        value = hints.string_for(field, rng) if field else None
        if value is None:
            value = (rng.choice(hints.keywords[:4]) if hints.keywords else rng.choice(_WORDS))
    lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
    if hi is not None:
        value = value[: int(hi)]
    while len(value) < lo:
        value += " " + rng.choice(_WORDS)
    return value[: int(hi)] if hi is not None else value


# --- free text ---------------------------------------------------------------------------------------

_STOP = _wordset("""a an and are as at be been but by can could do does did for from has have how i i'd i'm if in
into is it it's its me my of on or our please should so some tell than that the their them then there these they
this to use using was we what when where which while who why will with would you your about explain describe give
write make show help need want like just also very really briefly simple terms short more most much many any each
other such only own same too can't don't let get got one two three four five few way ways during like looks
look looking turns turn seems seem follow following answer answers question curious kind sort thing things
something anything everything really actually basically maybe perhaps always never often sometimes usually
good better best bad worse worst new old big small large little long high low first last next several yes
know think feel say said go goes going went come comes take takes took see sees saw find found work works
does doing done being having hello thanks thank okay ok hey hi compare discuss outline summarize""")
_CAP_STOP = _wordset("""I The A An What Why How When Where Who Which Can Could Would Will Should Is Are Do Does Did
Please Use Tell Give Write Explain Describe Make Show List Summarize Translate Classify Extract Say Hi Hello Hey
Thanks Thank It In On At For From To And But Or If So My Your Our This That These Those Here There Also Then
Now Today Yes No Ok Okay Let Find Get Look Check""")


def _keywords(text: str) -> list[str]:
    """Content words of a text, most frequent first, in their written form ("PostgreSQL", "recursion")."""
    counts: dict[str, int] = {}
    forms: dict[str, str] = {}
    text = text[: 2 * _HEAD]
    for m in re.finditer(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]", text):
        word = m.group(0)
        low = word.lower()
        if low in _STOP or len(low) <= 2:
            continue
        counts[low] = counts.get(low, 0) + 1
        mixed = any(c.isupper() for c in word[1:])
        proper = word[0].isupper() and m.start() > 0 and not re.search(r"[.!?:]\s*$", text[: m.start()])
        if mixed or (proper and forms.get(low, word) == word):
            forms[low] = word
        else:
            forms[low] = low if not mixed else forms.get(low, word)
    ranked = sorted(counts, key=lambda w: (-counts[w], -len(w), w))[:8]
    return [forms[w] for w in ranked]


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: text.rfind(" ", 0, limit) if " " in text[:limit] else limit]


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


_TASK_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((task, re.compile(pat, re.I)) for task, pat in (
    ("code_review", r"\b(review|refactor|find the bug|what's wrong with)\b.*(code|function|snippet|\bpr\b)|```"),
    ("code_generation", r"\b(write|implement|create|generate)\b.{0,40}\b(function|class|script|program|code|"
                        r"method|sql query|regex)\b|\b(python|javascript|typescript|golang|rust|java|c\+\+)\b"),
    ("math", r"\d\s*[-+*/×÷^]\s*\d|\b(solve|calculate|compute|equation|integral|derivative|sum of)\b"),
    ("summarization", r"\b(summari[sz]e|summary|tl;?dr|condense)\b"),
    ("translation", r"\btranslat(e|ion)\b"),
    ("classification", r"\b(classify|categori[sz]e|sentiment|label)\b"),
    ("extraction", r"\bextract\b|\bpull out\b"),
    ("creative_writing", r"\b(poem|story|haiku|song|lyrics|limerick|fiction|slogan|joke)\b"),
    ("reasoning", r"\b(why|reason|step by step|prove|puzzle|logic|deduce|compare)\b"),
))


_HEAD = 1500  # intent is read from the start of a long prompt: keeps big pastes cheap


def _task_of(text: str) -> str:
    text = text[:_HEAD]
    for task, pattern in _TASK_RULES:
        if pattern.search(text):
            return task
    if _choices_in(text):
        return "simple_qa"
    return "simple_qa" if text.rstrip().endswith("?") and len(text) < 120 else "chat"


_LEAD_IN = re.compile(
    r"^\s*(?:(?:please|hey|hi|ok|okay|so|now|quick question)[,!:\s]+)*"
    r"(?:(?:can|could|would|will) you\s+(?:please\s+)?)?(?:please\s+)?"
    r"(?:(?:briefly|quickly|simply)\s+)?"
    r"(?:explain|describe|tell me(?: about)?|what(?:'s| is| are| was| were)|who(?:'s| is| was| are)|"
    r"define|give me an overview of|help me understand|teach me(?: about)?|talk about|discuss|compare|"
    r"what do you know about|write about|outline|give me|show me|generate|create|make|suggest|find)?\s*", re.I)
_HOW_DO_I = re.compile(r"^how (?:do|can|should|would) (?:i|we|you|one) ", re.I)
_ASIDES = re.compile(r",?\s*\b(?:in (?:simple|plain|layman'?s) terms|briefly|in short|quickly|for me)\b,?", re.I)
_CLAUSE_END = re.compile(r"[?.!;:\n]|,\s|\s(?:but|because|so that|and then|though)\s")


def _topic(text: str) -> str:
    """What the prompt is about, as a short phrase ("why the sky looks blue", "recursion")."""
    t = _ASIDES.sub("", " ".join(text[:_HEAD].split()))
    t = _LEAD_IN.sub("", t, count=1)
    m = _CLAUSE_END.search(t)
    t = t[: m.start()] if m and len(t[: m.start()].split()) >= 2 else re.split(r"[?.!;:\n]", t, maxsplit=1)[0]
    t = _HOW_DO_I.sub("how to ", t)
    words = t.split()[:9]
    if words and words[0] in _CAP_STOP:  # "Why the sky..." -> "why the sky...", "Paris" stays
        words[0] = words[0].lower()
    return " ".join(words).strip(" ,")


def _choices_in(text: str) -> list[tuple[str, str]]:
    return re.findall(r"(?m)^\s*\(?([A-H])[.)]\s+(.+?)\s*$", text)


_ARITH = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?(?:\s*(?:\*\*|[-+*/×÷x^%])\s*\(?-?\d+(?:\.\d+)?\)?)+)")
_OPS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                         ast.Div: operator.truediv, ast.Mod: operator.mod, ast.Pow: operator.pow,
                         ast.USub: operator.neg, ast.UAdd: operator.pos}


def _arithmetic(text: str) -> tuple[str, float] | None:
    """The first arithmetic expression in the text and its value, evaluated safely."""
    m = _ARITH.search(text[:_HEAD])
    if not m:
        return None
    expr = m.group(1).strip()
    py = expr.replace("×", "*").replace("÷", "/").replace("^", "**").replace("x", "*")
    try:
        value = _eval(ast.parse(py, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return expr, value


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError("not arithmetic")


def _fmt_number(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}" if abs(v) >= 10_000 else str(int(v))
    return f"{v:.6g}"


# Phrasings per tier: what makes each simulated model recognisable.
_OPENERS = {
    "frontier": ["Short answer: {core}", "Here's the core idea: {core}", "{core}"],
    "balanced": ["Sure. {core}", "Good question. {core}", "{core}"],
    "fast": ["{core}"],
    "local": ["Okay, so {core_l}", "Well, {core_l}", "{core}"],
}
_CORE_CLAUSE = [  # the topic is a clause: "why the sky looks blue"
    "{Topic} mostly comes down to {kw} and {kw2}.",
    "{Topic} is easiest to see once you look at {kw}.",
    "The explanation for {topic} starts with {kw}.",
]
_CORE_NOUN = [  # the topic is a noun phrase: "recursion", "the French revolution"
    "{Topic} is best understood through {kw} and {kw2}.",
    "When it comes to {topic}, the key factor is {kw}.",
    "At its heart, {topic} is about {kw}.",
    "{Topic} boils down to how {kw} relates to {kw2}.",
]
_BODY = [
    "It helps to start with {kw}, because most of the other details follow from it.",
    "In practice, {kw} and {kw2} tend to matter more than people expect.",
    "A useful way to think about it is as a trade-off between {kw} and {kw2}.",
    "Most of the confusion comes from mixing up {kw} with {kw2}.",
    "A concrete example makes this clearer: look at what happens to {kw} when the conditions change.",
    "There are exceptions, but they are rare enough that the general rule holds.",
    "The same pattern shows up in many related situations, which is why it is worth understanding.",
    "It is worth checking the assumptions first, since {kw} is often where things go wrong.",
    "Measured carefully, the effect is real, although smaller than it first appears.",
    "Historically, the understanding of {kw} developed step by step rather than all at once.",
    "One common misconception is that {kw} works in isolation; in reality it depends on {kw2}.",
    "If you want to go further, compare how {kw} behaves at small and at large scales.",
    "The details vary from case to case, but the underlying mechanism stays the same.",
    "Put simply, change {kw} and almost everything downstream changes with it.",
]
_WEAK = [
    "I might be oversimplifying this, though.",
    "I'm not completely sure about every detail here.",
    "That's roughly how it works, at least in the common cases.",
]
_CLOSERS = {
    "frontier": ["If you want, I can go deeper into {kw}.", "Happy to expand on any part of this.", ""],
    "balanced": ["Hope that helps!", "", "Let me know if you'd like an example."],
    "fast": [""],
    "local": ["Hope that makes sense.", ""],
}
_GREETINGS = {
    "frontier": ["Hi there! What can I help you with today?", "Hello! How can I help you today?"],
    "balanced": ["Hello! How can I help?", "Hi! What can I do for you?"],
    "fast": ["Hi!", "Hello!"],
    "local": ["Hey there!", "Hi, nice to meet you!"],
}
_GREETING = re.compile(r"^\s*(?:say\s+)?(?:hi|hello|hey|howdy|good (?:morning|afternoon|evening)|greetings|"
                       r"yo|hiya)\b[\s!.,]*(?:there)?[\s!.,]*$", re.I)
_THANKS = re.compile(r"^\s*(?:thanks|thank you|thx|cheers)\b", re.I)


def _sentence(ctx: _Context, index: int, topic: str) -> str:
    return _fill(ctx.rng(index, "sentence").choice(_CORE_NOUN), topic, _keywords(ctx.user_text), 0)


_FALLBACK_KWS = ("a few concrete examples", "the underlying mechanism", "the basic building blocks",
                 "the surrounding context", "the edge cases")


def _fill(template: str, topic: str, kws: list[str], shift: int) -> str:
    """Fill a template; a topic of one or two words is not reused as its own keyword."""
    short = set(topic.lower().split()) if len(topic.split()) <= 2 else set()
    pool = [k for k in kws if k not in short] or list(_FALLBACK_KWS)
    kw, kw2 = pool[shift % len(pool)], pool[(shift + 1) % len(pool)]
    if kw2 == kw:
        kw2 = _FALLBACK_KWS[shift % len(_FALLBACK_KWS)]
    return template.format(topic=topic, Topic=topic[:1].upper() + topic[1:], kw=kw, kw2=kw2)


def _sentence_budget(ctx: _Context, rng: random.Random, good: bool) -> int:
    base = {"frontier": 3, "balanced": 2, "fast": 1, "local": 1}[ctx.prof.tier]
    cap = {"frontier": 6, "balanced": 4, "fast": 3, "local": 2}[ctx.prof.tier]
    want = ctx.instructions
    if re.search(r"\b(one sentence|one word|in a word|briefly|brief|short|concise|tl;?dr|one line)\b", want):
        return 1
    n = base + min(2, count_tokens(ctx.user_text) // 40) + (rng.random() < 0.5)
    if re.search(r"\b(in detail|detailed|thorough|step by step|elaborate|in depth)\b", want):
        n += 2
    if not good:
        n -= 1
    return max(1, min(cap, n))


def _compose(ctx: _Context, index: int) -> str:
    """A plausible reply to the last user message, in the deployment's own style."""
    text, tier = ctx.user_text.strip(), ctx.prof.tier
    rng, good = ctx.rng(index, "compose"), ctx.is_good(index)
    if not text:
        return rng.choice(_GREETINGS[tier])
    if _GREETING.match(text):
        return rng.choice(_GREETINGS[tier])
    if _THANKS.match(text):
        return rng.choice(["You're welcome!", "Glad I could help.", "Any time!"])
    choices = _choices_in(text)
    if choices:
        return _multiple_choice(ctx, rng, good, choices)
    arith = _arithmetic(text)
    if arith:
        return _math(ctx, rng, good, *arith)
    fact = _fact(ctx, rng, good)
    if fact:
        return fact
    task = ctx.task
    if task == "classification":
        return _classify(ctx, rng, good)
    if task == "summarization":
        return _summarize(ctx, rng, good)
    if task == "code_generation":
        return _code(ctx, rng, good)
    if task == "creative_writing":
        return _creative(ctx, rng, good)
    return _explain(ctx, rng, good)


_CAPITALS = {
    "france": "Paris", "germany": "Berlin", "italy": "Rome", "spain": "Madrid", "portugal": "Lisbon",
    "japan": "Tokyo", "china": "Beijing", "india": "New Delhi", "canada": "Ottawa", "australia": "Canberra",
    "brazil": "Brasília", "mexico": "Mexico City", "egypt": "Cairo", "kenya": "Nairobi", "norway": "Oslo",
    "sweden": "Stockholm", "poland": "Warsaw", "netherlands": "Amsterdam", "switzerland": "Bern",
    "turkey": "Ankara", "argentina": "Buenos Aires", "south korea": "Seoul", "russia": "Moscow",
    "united kingdom": "London", "the uk": "London", "england": "London", "ireland": "Dublin",
    "united states": "Washington, D.C.", "the usa": "Washington, D.C.", "the us": "Washington, D.C.",
}
_KNOWN_PLACES = {c.lower(): c for c in (*_CITIES, *_CAPITALS.values())}
_FACTS = (
    (re.compile(r"\blargest planet\b", re.I), "the largest planet in the Solar System", "Jupiter"),
    (re.compile(r"\bwho wrote hamlet\b", re.I), "Hamlet was written by", "William Shakespeare"),
    (re.compile(r"\bboiling point of water\b", re.I), "water boils at", "100 °C (212 °F) at sea level"),
    (re.compile(r"\bspeed of light\b", re.I), "the speed of light is", "about 299,792 km per second"),
    (re.compile(r"\bchemical symbol for gold\b", re.I), "the chemical symbol for gold is", "Au"),
    (re.compile(r"\bhow many continents\b", re.I), "the number of continents is usually given as", "seven"),
)
_CAPITAL_Q = re.compile(r"\bcapital (?:city )?of ((?:the )?[a-z]+(?: [a-z]+)?)\b", re.I)


def _fact(ctx: _Context, rng: random.Random, good: bool) -> str | None:
    """A short factual answer for the handful of questions every demo asks."""
    text = ctx.user_text[:_HEAD]
    m = _CAPITAL_Q.search(text)
    subject = answer = None
    if m and (country := m.group(1).lower().rstrip("?. ")) in _CAPITALS:
        subject, answer = f"the capital of {m.group(1).rstrip('?. ')}", _CAPITALS[country]
        wrong = [c for c in _CAPITALS.values() if c != answer]
    else:
        for pattern, subj, value in _FACTS:
            if pattern.search(text):
                subject, answer, wrong = subj, value, [v for _, _, v in _FACTS if v != value]
                break
    if subject is None or answer is None:
        return None
    if not good:
        answer = rng.choice(wrong)
    sentence = f"{subject[:1].upper() + subject[1:]}{'' if subject.endswith(' is') else ' is'} {answer}."
    sentence = sentence.replace(" by is ", " by ").replace(" at is ", " at ").replace(" as is ", " as ")
    tier = ctx.prof.tier
    if tier == "fast":
        return answer + "."
    if tier == "local":
        return f"I believe it's {answer}."
    if tier == "frontier":
        return sentence.replace(answer, f"**{answer}**", 1)
    return sentence


def _explain(ctx: _Context, rng: random.Random, good: bool) -> str:
    tier, kws = ctx.prof.tier, _keywords(ctx.user_text)
    topic = _topic(ctx.user_text) or (kws[0] if kws else "this")
    in_topic = set(topic.lower().split())
    kws.sort(key=lambda k: k.lower() not in in_topic)  # stable: on-topic words first
    clause = topic.split(" ", 1)[0].lower() in ("why", "how", "what", "when", "where", "who", "whether", "which")
    core = _fill(rng.choice(_CORE_CLAUSE if clause else _CORE_NOUN), topic, kws, 0)
    opener = rng.choice(_OPENERS[tier]).format(core=core, core_l=core[:1].lower() + core[1:])
    n = _sentence_budget(ctx, rng, good)
    body = [_fill(t, topic, kws, k + 1) for k, t in enumerate(rng.sample(_BODY, k=max(0, n - 1)))]
    if not good:
        body.append(rng.choice(_WEAK))
    if tier == "frontier" and len(body) >= 3:
        text = opener + "\n\nKey points:\n" + "\n".join(f"- {s}" for s in body)
    else:
        text = " ".join([opener, *body])
    closer = _fill(rng.choice(_CLOSERS[tier]), topic, kws, 0) if n > 1 else ""
    return (text + ("\n\n" if "\n" in text else " ") + closer).strip() if closer else text


def _multiple_choice(ctx: _Context, rng: random.Random, good: bool, choices: list[tuple[str, str]]) -> str:
    pick = ctx.consensus_rng("mc").choice(choices) if good else rng.choice(choices)
    letter, option = pick
    tier = ctx.prof.tier
    if tier == "fast" or (tier != "frontier" and re.search(r"answer:\s*$", ctx.user_text, re.I)):
        return f"{letter}. {option}" if tier != "local" else letter
    why = _fill(rng.choice(["The other options conflict with how {kw} works.",
                            "It is the only option consistent with {kw}.",
                            "This follows directly once you consider {kw}."]), "", _keywords(ctx.user_text), 0)
    return f"The answer is {letter}. {option}\n\n{why}" if tier == "frontier" else f"{letter}. {option} — {why}"


def _math(ctx: _Context, rng: random.Random, good: bool, expr: str, value: float) -> str:
    if not good:  # a plausible slip: off by a little
        value = value + rng.choice((-1, 1)) * max(1, round(abs(value) * rng.choice((0.01, 0.1)) or 1))
    shown = _fmt_number(value)
    tier = ctx.prof.tier
    if tier == "frontier":
        return f"{expr} = {shown}.\n\nSo the answer is **{shown}**."
    if tier == "balanced":
        return f"{expr} = {shown}."
    if tier == "local":
        return f"I get {shown}."
    return shown


_POSITIVE = _wordset("good great excellent amazing love loved lovely fantastic wonderful happy best perfect "
                      "awesome enjoyed nice recommend delighted pleased superb brilliant fast friendly")
_NEGATIVE = _wordset("bad terrible awful hate hated poor worst broken disappointing disappointed slow rude "
                      "horrible useless angry refund late never problem problems issue issues sad")


_SPAMMY = _wordset("free winner won prize click offer urgent claim cash bonus guaranteed limited "
                    "act now congratulations selected")
_LABEL_LIST = re.compile(r"\b(?:into|as|one of|categories|labels|options)\b:?\s+([\w\s,/'-]+?)(?:[.?:\n]|$)", re.I)


def _classify(ctx: _Context, rng: random.Random, good: bool) -> str:
    """A label: lexicon-based for sentiment and spam, the shared consensus pick otherwise."""
    text = ctx.user_text
    low, words = text.lower(), set(_WORD.findall(text.lower()))
    if "spam" in low:
        labels = ["spam", "not spam"]
        best = "spam" if len(words & _SPAMMY) >= 2 else "not spam"
    elif "sentiment" in low or ("positive" in low and "negative" in low):
        labels = ["positive", "negative"] + (["neutral"] if "neutral" in low or "positive" not in low else [])
        score = len(words & _POSITIVE) - len(words & _NEGATIVE)
        best = "positive" if score > 0 else "negative" if score < 0 else labels[-1]
    else:
        m = _LABEL_LIST.search(text)
        labels = [w.strip() for w in re.split(r",|/|\bor\b", m.group(1)) if w.strip()] if m else []
        if len(labels) < 2:
            return _explain(ctx, rng, good)
        best = ctx.consensus_rng("label").choice(labels)
    label = best if good else rng.choice([lab for lab in labels if lab != best] or labels)
    if ctx.prof.tier in ("fast", "local") or "one word" in ctx.instructions:
        return label[:1].upper() + label[1:]
    return f"{label[:1].upper() + label[1:]}. " + rng.choice([
        "The wording points clearly in that direction.",
        "Most of the signal comes from the choice of words.",
        "That is the most consistent reading of the text."])


def _summarize(ctx: _Context, rng: random.Random, good: bool) -> str:
    text = ctx.user_text
    body = text.split(":", 1)[1] if ":" in text[:80] else text
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(body.split())) if len(s.split()) > 3]
    if not sentences:
        return _explain(ctx, rng, good)
    kws = set(_keywords(body)[:6])
    ranked = sorted(sentences, key=lambda s: -len(kws & set(_WORD.findall(s.lower()))))
    n = {"frontier": 3, "balanced": 2, "fast": 1, "local": 1}[ctx.prof.tier]
    keep = [s for s in sentences if s in ranked[:n]] if good else ranked[-n:]
    lead = {"frontier": "Summary: ", "balanced": "In short: ", "fast": "", "local": "Basically, "}[ctx.prof.tier]
    return lead + " ".join(keep)


_LANGS = (("python", "python"), ("javascript", "javascript"), ("typescript", "typescript"), ("golang", "go"),
          (" go ", "go"), ("rust", "rust"), ("java", "java"), ("sql", "sql"), ("bash", "bash"), ("shell", "bash"))
_CODE_WORDS = _wordset("function method class script program code snippet python javascript typescript "
                        "golang rust java sql bash shell")


def _base_verb(word: str) -> str:
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


def _code(ctx: _Context, rng: random.Random, good: bool) -> str:
    low = " " + ctx.user_text.lower() + " "
    lang = next((tag for key, tag in _LANGS if key in low), "python")
    m = re.search(r"\b(?:that|to|which|for)\s+(.+?)(?:[.?!\n]|$)", ctx.user_text)
    words = [w for w in _WORD.findall((m.group(1) if m else ctx.user_text).lower())
             if w.isalpha() and w not in _STOP and len(w) > 2 and w not in _CODE_WORDS][:3]
    if words:  # "returns the n-th Fibonacci number" -> return_fibonacci_number
        words[0] = _base_verb(words[0])
    snake = "_".join(words) or "solve"
    camel = words[0] + "".join(w.title() for w in words[1:]) if words else "solve"
    doc = (m.group(1).strip().rstrip(".") if m else "Do the requested work").capitalize()
    table = words[-1] if words else "items"
    body = {
        "python": (f"def {snake}(items):\n    \"\"\"{doc}.\"\"\"\n    if items is None:\n"
                   "        raise ValueError(\"items is required\")\n    result = []\n    for item in items:\n"
                   "        result.append(item)\n    return result\n"),
        "javascript": (f"function {camel}(items) {{\n  // {doc}.\n"
                       "  if (items == null) throw new Error('items is required');\n"
                       "  return items.map((item) => item);\n}\n"),
        "typescript": (f"export function {camel}<T>(items: T[]): T[] {{\n  // {doc}.\n"
                       "  return items.map((item) => item);\n}\n"),
        "go": (f"// {camel}: {doc}.\nfunc {camel}(items []string) []string {{\n"
               "\tout := make([]string, 0, len(items))\n"
               "\tfor _, item := range items {\n\t\tout = append(out, item)\n\t}\n\treturn out\n}\n"),
        "rust": (f"/// {doc}.\npub fn {snake}(items: &[i64]) -> Vec<i64> {{\n"
                 "    items.iter().copied().collect()\n}\n"),
        "java": (f"/** {doc}. */\npublic static <T> List<T> {camel}(List<T> items) {{\n"
                 "    return new ArrayList<>(items);\n}\n"),
        "sql": f"-- {doc}\nSELECT *\nFROM {table}\nORDER BY 1\nLIMIT 100;\n",
        "bash": f"#!/usr/bin/env bash\n# {doc}\nset -euo pipefail\nfor item in \"$@\"; do\n  echo \"$item\"\ndone\n",
    }[lang]
    intro = {
        "frontier": f"Here's a clean implementation in {lang.title() if lang != 'sql' else 'SQL'}:",
        "balanced": "Here you go:",
        "fast": "",
        "local": "Something like this should work:",
    }[ctx.prof.tier]
    outro = {
        "frontier": "It runs in linear time and validates its input; adjust the loop body to your exact rules.",
        "balanced": "It handles the basic case; add edge-case checks as needed.",
        "fast": "",
        "local": "",
    }[ctx.prof.tier]
    if not good and outro:
        outro = "I haven't tested this, so double-check the edge cases."
    return "\n\n".join(p for p in (intro, f"```{lang}\n{body}```", outro) if p)


_JOKES = (
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "I told my computer I needed a break, and it said: 'No problem, I'll go to sleep.'",
    "Why did the scarecrow win an award? Because he was outstanding in his field.",
    "There are 10 kinds of people: those who understand binary and those who don't.",
    "Why don't skeletons fight each other? They don't have the guts.",
)


def _creative(ctx: _Context, rng: random.Random, good: bool) -> str:
    low = ctx.user_text.lower()
    if "joke" in low:
        joke = rng.choice(_JOKES)
        return joke if ctx.prof.tier in ("fast", "local") else f"Here's one: {joke}"
    m = re.search(r"\babout\s+(.+?)(?:[.?!\n]|$)", ctx.user_text)
    subject = (m.group(1).strip() if m else (_keywords(ctx.user_text) or ["the sea"])[0])
    if "haiku" in low or "poem" in low or "verse" in low:
        lines = [f"Quiet light on {subject}", "the hours lean softly westward", "and the world slows down",
                 "a small wind carries the thought", "further than the road can go"]
        n = 3 if "haiku" in low else {"frontier": 5, "balanced": 4, "fast": 3, "local": 3}[ctx.prof.tier]
        return "\n".join([lines[0], *rng.sample(lines[1:], k=n - 1)])
    beats = [
        f"Once, at the edge of a quiet valley, there lived {subject}.",
        "Every morning began the same way, with mist on the fields and a long walk to the river.",
        "One day something unexpected appeared on the path: a small wooden box, warm to the touch.",
        "Curiosity won, as it usually does, and the lid came open.",
        "Inside was nothing but a note that said: 'Go a little further than yesterday.'",
        "So that is exactly what happened, and the valley never looked quite the same again.",
    ]
    n = {"frontier": 6, "balanced": 5, "fast": 3, "local": 3}[ctx.prof.tier] - (0 if good else 1)
    return " ".join([*beats[: max(2, n - 1)], beats[-1]])
