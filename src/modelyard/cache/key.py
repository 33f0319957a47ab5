"""Canonical request keys: a hash of everything in the parsed request that can change the answer.

Nothing is allow-listed: every message part, the tools, tool choice, response format, every
sampling parameter, every unknown parameter (`req.extra`), `n`, `user`, the routing hints in
`metadata` and the tenant go into the key, so two requests share an entry only when the gateway
would send the same thing upstream for the same caller. What is left out only changes how the
answer is delivered: `stream`, `stream_options` and the cache directives themselves.

The semantic scope is the same hash without the last user turn: requests in one scope differ only
in that turn, whose embedding is then compared.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..types import ChatRequest, ImagePart, Message

VERSION = 1  # bump when the canonical form changes: old entries then simply miss
DIRECTIVES = frozenset(("cache", "cache_control"))  # request metadata the cache reads, not part of the key


def _content(c: Any) -> Any:
    if c is None or isinstance(c, str):
        return c
    return [["image", p.url, p.detail] if isinstance(p, ImagePart) else ["text", p.text] for p in c]


def _message(m: Message) -> list[Any]:
    calls = [[t.id, t.name, t.arguments] for t in m.tool_calls] if m.tool_calls else None
    return [m.role, _content(m.content), m.name, calls, m.tool_call_id]


def _params(req: ChatRequest, tenant: str, route: str) -> list[Any]:
    meta = {k: v for k, v in req.metadata.items() if k not in DIRECTIVES} if req.metadata else None
    tools = [[t.name, t.description, t.parameters] for t in req.tools] if req.tools else None
    return [VERSION, tenant, route, tools, req.tool_choice, req.response_format, req.temperature, req.top_p,
            req.max_tokens, req.stop, req.seed, req.n, req.user, meta, req.extra or None]


def _digest(value: Any) -> str:
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def exact_key(req: ChatRequest, tenant: str, route: str) -> str:
    """The exact-cache key of a request sent by `tenant` and resolved to `route`."""
    return _digest(["exact", _params(req, tenant, route), [_message(m) for m in req.messages]])


def semantic_scope(req: ChatRequest, tenant: str, route: str) -> str:
    """The scope whose entries may answer this request: everything but the last message (the
    caller checks that it is a plain-text user turn)."""
    return _digest(["semantic", _params(req, tenant, route), [_message(m) for m in req.messages[:-1]]])


def last_user_text(req: ChatRequest) -> str | None:
    """The last message's text when it is a user turn of text only; None otherwise (a tool result,
    an assistant prefill or an image: those requests are cached exactly only)."""
    if not req.messages:
        return None
    m = req.messages[-1]
    if m.role != "user" or m.tool_calls or m.name is not None or m.has_image():
        return None
    return m.text()
