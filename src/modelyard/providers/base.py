"""The adapter interface and the runtime form of a deployment.

A `Deployment` is built once at start-up from config: its endpoint URL, headers (with the
resolved key) and catalog card are computed there, so the request path only reads fields.
One `Provider` instance exists per provider kind and owns one pooled HTTP session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..catalog import ModelCard
from ..config import SimSettings
from ..types import ChatRequest, ChatResponse, StreamChunk, Usage


@dataclass(slots=True, eq=False)
class Deployment:
    name: str  # the config key, unique
    provider: str  # openai | azure | anthropic | gemini | sim
    model: str  # the upstream's model name
    card: ModelCard
    api_base: str = ""
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # extra headers from config
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    tags: tuple[str, ...] = ()
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    sim: SimSettings = field(default_factory=SimSettings)
    # Precomputed by the provider's `prepare` at start-up (URL, full header set, ...).
    prepared: dict[str, Any] = field(default_factory=dict, repr=False)


class Provider:
    """Base class of the adapters: request -> wire, wire/SSE -> types, errors -> taxonomy."""

    kind: ClassVar[str] = ""

    def prepare(self, dep: Deployment) -> None:
        """Precompute per-deployment request data (URL, headers) at start-up."""

    def prepared(self, dep: Deployment) -> dict[str, Any]:
        """`dep`'s precomputed request data, prepared now if the gateway did not (a bare adapter)."""
        if "url" not in dep.prepared:
            self.prepare(dep)
        return dep.prepared

    async def start(self) -> None:
        """Open pooled connections; called once inside the running event loop."""

    async def close(self) -> None:
        """Release the pooled connections."""

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        raise NotImplementedError

    def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        """Yield chunks; the last one carries usage. Raise taxonomy errors before the first chunk
        when the upstream refuses, and from inside the iteration when it fails mid-stream."""
        raise NotImplementedError


# What reading a malformed upstream document raises (a field of the wrong type, a missing key):
# adapters turn it into a ConnectionFailed that names the deployment, never an internal error.
MALFORMED = (AttributeError, TypeError, KeyError, IndexError, ValueError)


def checked_usage(usage: Usage) -> Usage:
    """`usage` with whole, non-negative token counts (integral floats made int); anything else
    raises ValueError: the counts price the request, so a malformed one must not reach the bill."""
    i, o, c, r = usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens
    if type(i) is int and type(o) is int and type(c) is int and type(r) is int and min(i, o, c, r) >= 0:
        return usage
    for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
        v = getattr(usage, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v != int(v) or v < 0:
            raise ValueError(f"usage.{name} is not a token count: {v!r}")
        setattr(usage, name, int(v))
    return usage
