"""The adapter interface every provider implements, and the checks adapters share.

One `Provider` instance exists per provider kind (per gateway); its `prepare` computes what each
of its deployments needs at start-up (`Deployment.endpoint`, for HTTP) and makes itself the
deployment's `adapter`, so the request path only reads fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from ..deployment import Deployment
from ..errors import BadRequest
from ..types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, StreamChunk, Usage


class Provider:
    """Base class of the adapters: request -> wire, wire/SSE -> types, errors -> taxonomy."""

    kind: ClassVar[str] = ""

    def prepare(self, dep: Deployment) -> None:
        """Precompute what calls to `dep` need, at start-up, and become its adapter."""
        dep.adapter = self

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

    def embeds(self, dep: Deployment) -> bool:
        """Whether `dep` can serve `POST /v1/embeddings` (the gateway skips deployments that cannot)."""
        return False

    async def embed(self, req: EmbeddingRequest, dep: Deployment) -> EmbeddingResponse:
        """Vectors for `req.inputs`, in order, with the input tokens counted."""
        raise BadRequest(f"deployment '{dep.name}' ({dep.provider}) does not serve embeddings", param="model")


# What reading a malformed upstream document raises (a field of the wrong type, a missing key):
# adapters turn it into a ConnectionFailed that names the deployment, never an internal error.
MALFORMED = (AttributeError, TypeError, KeyError, IndexError, ValueError)
_INFINITE = (float("inf"), float("-inf"))


def checked_usage(usage: Usage) -> Usage:
    """`usage` with whole, non-negative token counts (integral floats made int); anything else
    raises ValueError: the counts price the request, so a malformed one must not reach the bill."""
    i, o, c, r = usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens
    w, h = usage.cache_write_tokens, usage.cache_write_1h_tokens
    if type(i) is int and type(o) is int and type(c) is int and type(r) is int and type(w) is int \
            and type(h) is int and min(i, o, c, r, w, h) >= 0:
        return usage
    for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens"):
        v = getattr(usage, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v in _INFINITE or v != int(v) or v < 0:
            raise ValueError(f"usage.{name} is not a token count")  # (its value is the upstream's text)
        setattr(usage, name, int(v))
    return usage
