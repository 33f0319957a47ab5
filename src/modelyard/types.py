"""The provider-neutral vocabulary every layer speaks.

Plain slotted dataclasses, not pydantic: these objects are built on every request, so they must
be cheap. Validation of untrusted input happens once, at the edge (server/ parsers, config.py).
Message content is either a plain string (the common case, kept as-is) or a list of parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Role = Literal["system", "developer", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset(("system", "developer", "user", "assistant", "tool"))


@dataclass(slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image by URL; base64 images are `data:<media_type>;base64,<data>` URLs."""

    url: str
    detail: str | None = None
    type: Literal["image"] = "image"

    @property
    def is_data_url(self) -> bool:
        return self.url.startswith("data:")

    def split_data_url(self) -> tuple[str, str]:
        """Return (media_type, base64_data) of a data URL."""
        head, _, data = self.url.partition(",")
        media_type = head[5:].split(";", 1)[0] or "image/png"
        return media_type, data


Part = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON document, as the model produced it


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(slots=True)
class Message:
    role: str
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None  # for role == "tool": the call this result answers

    def text(self) -> str:
        """The text of the message, image parts left out."""
        c = self.content
        if c is None:
            return ""
        if isinstance(c, str):
            return c
        return "".join(p.text for p in c if isinstance(p, TextPart))

    def has_image(self) -> bool:
        c = self.content
        return isinstance(c, list) and any(isinstance(p, ImagePart) for p in c)


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit that applies to a request: the key's, its team's or its user's."""

    scope: str  # "key:<id>" | "team:<name>" | "user:<name>": the name spend is counted under
    limit_usd: float
    period: Literal["daily", "weekly", "monthly", "total"] = "monthly"
    soft_pct: float | None = None  # past this share of the limit, routing prefers cheaper models


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests and tokens per minute for one scope (a key, a team)."""

    scope: str  # "key:<id>" | "team:<name>"
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the virtual key (with its team and user) or the master key / no key.

    The server fills it from the request's credentials; the gateway carries it into limits,
    budgets, caches (`tenant` scopes entries), experiments and every log row.
    """

    key_id: str | None = None  # None: the master key, or a server without authentication
    key_name: str | None = None
    team: str | None = None
    user: str | None = None
    models: frozenset[str] | None = None  # groups/deployments this key may call; None = all
    budgets: tuple[Budget, ...] = ()  # every budget the request counts against (key, team, user)
    limits: tuple[RateLimit, ...] = ()  # every rate limit it counts against (key, team)
    log_content: bool | None = None  # the key's content-logging setting (None: the group's or the default)

    @property
    def tenant(self) -> str:
        """The scope that separates one caller's cached answers and stored responses from another's."""
        return f"key:{self.key_id}" if self.key_id else "master"


MASTER = Caller()


@dataclass(slots=True)
class ChatRequest:
    """One chat request, whatever API it came in through."""

    model: str
    messages: list[Message]
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None  # "auto" | "none" | "required" | {"name": ...}
    response_format: dict[str, Any] | None = None  # {"type": "json_object"} | {"type": "json_schema", ...}
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage
    user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # routing hints (metadata / extra_body.modelyard)
    extra: dict[str, Any] = field(default_factory=dict)  # other OpenAI params, forwarded as-is where supported
    caller: Caller = MASTER  # who sent it (set by the server from the credentials; never sent upstream)
    experiment: str | None = None  # "name=variant": set by the gateway when an experiment assigned it

    def system_text(self) -> str:
        return "\n\n".join(m.text() for m in self.messages if m.role in ("system", "developer"))

    def prompt_text(self) -> str:
        """All message text, for analysis and token estimates."""
        return "\n".join(m.text() for m in self.messages)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # part of input_tokens served from the provider's prompt cache
    reasoning_tokens: int = 0  # part of output_tokens spent on hidden reasoning
    cache_write_tokens: int = 0  # part of input_tokens written to the provider's prompt cache
    cache_write_1h_tokens: int = 0  # part of cache_write_tokens written with a 1-hour lifetime (Anthropic)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cache_write_1h_tokens += other.cache_write_1h_tokens


@dataclass(slots=True)
class Choice:
    index: int
    message: Message
    finish_reason: str | None = "stop"  # stop | length | tool_calls | content_filter


@dataclass(slots=True)
class Scored:
    """A candidate deployment with the score and verdict a strategy gave it."""

    deployment: str
    score: float = 0.0
    eligible: bool = True
    reason: str = ""


@dataclass(slots=True)
class RouteDecision:
    """Why a request went where it went: kept with every response and in the request log."""

    model: str  # the public name the client asked for
    deployment: str  # the deployment chosen
    strategy: str
    reason: str = ""
    candidates: list[Scored] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)  # deployments tried before the one that served
    attempts: int = 0  # upstream calls made for this request (retries and hedges included)
    rule: str | None = None  # the rule (rules strategy) or class (tier) that decided, if any
    failures: list[str] = field(default_factory=list)  # the error type of each failed attempt (with `fallbacks`)
    upstream_s: float = 0.0  # time in upstream calls (streams: until their first chunk), for telemetry

    def route_header(self) -> str:
        """`x-modelyard-route`: the strategy, and the rule that decided (header-safe ASCII)."""
        value = f"{self.strategy}; rule={self.rule}" if self.rule else self.strategy
        return value.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")

    def to_dict(self) -> dict[str, Any]:
        return self._as_dict(self.features)

    def log_dict(self) -> dict[str, Any]:
        """What the request log keeps: the decision as made. Features that routing never needed
        (a lazily explained decision that was not asked to explain itself) are left out rather than
        computed for the log: the columns beside it hold the real token usage."""
        return self._as_dict(self.features)

    def log_json(self) -> str:
        """`log_dict` as the JSON text the request log stores."""
        return orjson.dumps(self.log_dict()).decode()

    def _as_dict(self, features: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "model": self.model,
            "chosen": self.deployment,
            "strategy": self.strategy,
            "rule": self.rule,
            "reason": self.reason,
            "features": features,
            "candidates": [
                {"deployment": c.deployment, "eligible": c.eligible, "reason": c.reason, "score": c.score}
                for c in self.candidates
            ],
            "fallbacks": self.fallbacks,
            "attempts": self.attempts,
        }


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str  # the model name the upstream reported (or the deployment's model)
    choices: list[Choice]
    usage: Usage
    created: int = field(default_factory=lambda: int(time.time()))
    deployment: str = ""  # filled by the gateway
    cost_usd: float = 0.0  # filled by the gateway
    latency_ms: float = 0.0  # filled by the gateway
    decision: RouteDecision | None = None
    system_fingerprint: str | None = None
    # The upstream's OpenAI-format body, when it had one: lets the OpenAI API forward it untouched.
    openai_body: bytes | None = None
    # Gateway metadata for the client (execution-mode results: votes, judge verdicts, pipeline steps),
    # rendered as a top-level `modelyard` field that clients may ignore.
    modelyard: dict[str, Any] | None = None
    cache: str | None = None  # "hit" | "semantic-hit" | "miss" when the response cache was consulted
    cache_similarity: float | None = None  # on a semantic hit: cosine similarity of the last user turns

    @property
    def text(self) -> str:
        return self.choices[0].message.text() if self.choices else ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return (self.choices[0].message.tool_calls or []) if self.choices else []

    def wire_choices(self) -> list[dict[str, Any]] | None:
        """The upstream's parsed OpenAI-format choices, while `choices` was never built from them nor
        replaced (an encoder may then read them instead of building objects); None otherwise."""
        return None


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call; `id` and `name` come with the first piece of each call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamChunk:
    """One streamed event, or several that arrived together (their texts joined, their tool-call
    deltas in order). The last chunk of a stream carries `usage` (and no text)."""

    id: str
    model: str
    text: str | None = None
    role: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    index: int = 0
    created: int = 0
    # The upstream's OpenAI-format SSE events this chunk stands for (`data: ...` lines, each ending
    # in a blank line), when it spoke OpenAI: the OpenAI-format API forwards them untouched.
    openai_sse: bytes | None = None
    # False when more chunks already arrived with this one: the server may hold it and send the
    # whole batch in one write.
    flush: bool = True
    # True on a stream's last chunk when the adapter knows it is the last while the upstream's body
    # is still open (what remains is `[DONE]` and the body's end): the server ends its response at
    # once instead of waiting for that housekeeping.
    last: bool = False

    @property
    def usage_only(self) -> bool:
        """Usage and nothing else: the chunk OpenAI sends last when asked for usage."""
        return self.usage is not None and self.text is None and self.tool_calls is None and self.finish_reason is None


@dataclass(slots=True)
class EmbeddingRequest:
    """One embeddings request (`POST /v1/embeddings`), whatever provider serves it."""

    model: str
    inputs: list[str] | list[list[int]]  # texts, or token-id arrays (OpenAI-format upstreams only)
    dimensions: int | None = None  # shorter vectors, where the model supports it
    user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # routing hints (extra_body.modelyard)
    caller: Caller = MASTER


@dataclass(slots=True)
class EmbeddingResponse:
    vectors: list[list[float]]  # one per input, in input order
    model: str  # the model name the upstream reported (or the deployment's model)
    usage: Usage  # input_tokens only
    deployment: str = ""  # filled by the gateway
    cost_usd: float = 0.0  # filled by the gateway
    latency_ms: float = 0.0  # filled by the gateway
    decision: RouteDecision | None = None
