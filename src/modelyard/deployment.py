"""The runtime form of a deployment: one concrete endpoint of one model, used by every stage.

A `Deployment` is built once at start-up from config. Its provider's `prepare` then fills in
`adapter` (the provider instance that calls it) and, for HTTP providers, `endpoint` (URL, full
header set, total timeout): the request path only reads fields. Nothing here knows a wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from .catalog import ModelCard
from .config import SimSettings
from .types import ChatRequest, ChatResponse, StreamChunk


class Adapter(Protocol):
    """What the execution stage calls on a deployment's provider (providers/base.py implements it)."""

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse: ...

    def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]: ...


class _Unprepared:
    """The adapter of a deployment no provider has prepared: calling it says so."""

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        raise RuntimeError(f"deployment '{dep.name}' has no adapter: its provider's prepare() was never called")

    def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        raise RuntimeError(f"deployment '{dep.name}' has no adapter: its provider's prepare() was never called")


UNPREPARED: Adapter = _Unprepared()


@dataclass(slots=True, frozen=True, eq=False)
class Endpoint:
    """Where and how an HTTP adapter calls one deployment, computed by its provider at start-up."""

    url: str
    headers: dict[str, str] = field(repr=False)  # the full set sent on every call, names lower-case
    timeout: timedelta  # total, per call (the HTTP client enforces it)
    stream_url: str = ""  # where streamed calls go when the protocol has a separate URL ("" = `url`)
    max_tokens_key: str = "max_tokens"  # the request field that caps the output (OpenAI reasoning models differ)
    # Values that must never leave the gateway: the key and the configured header values (errors.redact).
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # The header set as HTTP/1.1 header lines, for the in-loop client of plain-http upstreams
    # (providers/h1_client.py); None when a name or value cannot go on the wire as it is.
    h1_headers: bytes | None = field(default=None, repr=False)


@dataclass(slots=True, eq=False)
class Deployment:
    name: str  # the config key, unique
    provider: str  # openai | azure | anthropic | gemini | sim | local | llamacpp
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
    tls_verify: bool | str = True  # https: system roots, a PEM file of CAs to trust, or off
    tls_client_cert: tuple[str, str] | None = None  # mutual TLS: (certificate chain, PKCS#8 key) PEM files
    sim: SimSettings = field(default_factory=lambda: SimSettings.model_validate({}))
    model_path: str | None = None  # llamacpp: the GGUF file
    embedding: bool = False  # llamacpp: also serves /v1/embeddings
    # Filled by the provider's `prepare` at start-up:
    adapter: Adapter = field(default=UNPREPARED, repr=False)  # the provider instance that calls it
    endpoint: Endpoint | None = field(default=None, repr=False)  # HTTP providers only
    # Whether every call ends within `timeout_s` without a timer of the caller's (an HTTP client's
    # total timeout, a simulation that never waits).
    timeout_enforced: bool = False
