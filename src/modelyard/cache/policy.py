"""Which cache applies to a request: config, then the group's override, then the request.

Per group (resolved once per route name): mode, TTL, whether sampled requests are cached, the
semantic threshold. Per request: `extra_body={"modelyard": {"cache": "off|exact|semantic"}}`
replaces the mode; `Cache-Control: no-cache` skips the lookup but stores the answer, `no-store`
does neither. Requests the cache must not answer:
- an explicit `temperature > 0` without a `seed` unless `sampled: true` (the caller asked for variety;
  a seed asks for reproducibility, and the seed is part of the key);
- `logprobs` / `top_logprobs` (a cached answer carries none);
- `n > 1` is cached like any request: `n` is in the key, so a hit returns the same n choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..errors import BadRequest
from ..types import ChatRequest
from .settings import MODES, CacheOverride, CacheSettings


@dataclass(frozen=True, slots=True, eq=False)  # one per group, made at start-up: hashed by identity
class GroupPolicy:
    mode: str
    ttl_s: float
    sampled: bool
    threshold: float
    min_chars: int
    tools: bool  # semantic matching for requests with tools


@dataclass(frozen=True, slots=True)
class Decision:
    """What the cache does for one request."""

    mode: str  # exact | semantic
    lookup: bool
    store: bool
    policy: GroupPolicy


def group_policy(settings: CacheSettings, override: CacheOverride | None) -> GroupPolicy:
    s, o = settings.semantic, override or CacheOverride()
    so = o.semantic
    return GroupPolicy(
        mode=o.mode or settings.mode, ttl_s=o.ttl_s or settings.ttl_s,
        sampled=settings.sampled if o.sampled is None else o.sampled,
        threshold=so.threshold if so and so.threshold is not None else s.threshold,
        min_chars=so.min_chars if so and so.min_chars is not None else s.min_chars,
        tools=so.tools if so and so.tools is not None else s.tools)


def cache_control(value: str) -> tuple[bool, bool]:
    """(lookup, store) allowed by a Cache-Control header value."""
    tokens = {t.strip().split("=", 1)[0].lower() for t in value.split(",")}
    if "no-store" in tokens:
        return False, False
    return "no-cache" not in tokens, True


def decide(policy: GroupPolicy, req: ChatRequest) -> Decision | None:
    """None when the cache does not apply to this request."""
    mode, lookup, store = policy.mode, True, True
    meta = req.metadata
    if meta:
        asked = meta.get("cache")
        if asked is not None:
            if asked not in MODES:
                raise BadRequest(f"modelyard.cache must be one of {', '.join(MODES)}, got {asked!r}",
                                 param="modelyard.cache")
            mode = asked
        cc = meta.get("cache_control")
        if isinstance(cc, str):
            lookup, store = cache_control(cc)
    if mode == "off" or not (lookup or store):
        return None
    if req.temperature and req.seed is None and not policy.sampled:
        return None
    if req.extra and (req.extra.get("logprobs") or req.extra.get("top_logprobs")):
        return None
    return _decision(mode, lookup, store, policy)


@cache
def _decision(mode: str, lookup: bool, store: bool, policy: GroupPolicy) -> Decision:
    """A few per group (mode × lookup × store), each made once rather than per request."""
    return Decision(mode, lookup, store, policy)
