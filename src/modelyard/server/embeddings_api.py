"""`POST /v1/embeddings` in the OpenAI format: `input` (a string, a list of strings, or token-id
arrays), `encoding_format` (float | base64), `dimensions`, `user`; routed by the gateway through
the model's deployments that serve embeddings, with fallbacks, costed and logged (api "embeddings").
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BadRequest
from ..types import EmbeddingRequest, EmbeddingResponse
from .http import JSON, Receive, Scope, Send, content_length
from .validate import bad, integer, type_name
from .validate import model as model_name

if TYPE_CHECKING:
    from .app import App

MAX_INPUTS = 2048
_FIELDS = frozenset(("model", "input", "encoding_format", "dimensions", "user", "modelyard", "metadata"))


def _inputs(value: Any) -> list[str] | list[list[int]]:
    if isinstance(value, str):
        if not value:
            raise bad("input", "must not be an empty string")
        return [value]
    if not isinstance(value, list) or not value:
        raise bad("input", f"must be a string, a non-empty array of strings or of token arrays, got "
                           f"{'an empty array' if isinstance(value, list) else type_name(value)}")
    if len(value) > MAX_INPUTS:
        raise bad("input", f"at most {MAX_INPUTS} inputs per request, got {len(value)}")
    if all(isinstance(v, str) for v in value):
        for i, v in enumerate(value):
            if not v:
                raise bad(f"input[{i}]", "must not be an empty string")
        return list(value)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):  # one token array
        return [list(value)]
    arrays: list[list[int]] = []
    for i, v in enumerate(value):
        if not isinstance(v, list) or not v or not all(isinstance(t, int) and not isinstance(t, bool) for t in v):
            raise bad(f"input[{i}]", "must be a string or a non-empty array of token ids, all inputs of one kind")
        arrays.append(v)
    return arrays


def parse_request(body: Any) -> tuple[EmbeddingRequest, str]:
    """The neutral request and the encoding the client asked for."""
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type_name(body)}")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise bad(unknown[0], f"unsupported field; /v1/embeddings takes {', '.join(sorted(_FIELDS))}")
    req = EmbeddingRequest(model=model_name(body), inputs=_inputs(body.get("input")))
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad("encoding_format", f"must be 'float' or 'base64', got {encoding!r}")
    req.dimensions = integer(body, "dimensions", 1, 65536)
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise bad("user", "must be a string")
        req.user = user
    for key in ("metadata", "modelyard"):
        v = body.get(key)
        if v is not None:
            if not isinstance(v, dict):
                raise bad(key, f"must be an object, got {type_name(v)}")
            req.metadata.update(v)
    return req, encoding


def render(resp: EmbeddingResponse, encoding: str) -> bytes:
    data = []
    for i, v in enumerate(resp.vectors):
        vec: Any = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if encoding == "base64" else v
        data.append({"object": "embedding", "index": i, "embedding": vec})
    tokens = resp.usage.input_tokens
    return orjson.dumps({"object": "list", "data": data, "model": resp.model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def install(app: App) -> None:
    """Serve POST /v1/embeddings (and /embeddings, as the chat routes are)."""

    async def embeddings(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        caller = app.check_auth(scope)
        req, encoding = parse_request(await app.read_json(scope, receive))
        req.caller = caller
        resp = await app.gateway.embed(req, request_id=rid)
        body = render(resp, encoding)
        dep = app.gateway.deployments[resp.deployment]
        headers = app._route_headers(rid, dep.name, dep.model, resp.decision)
        headers += (JSON, (b"x-modelyard-cost-usd", b"%.8f" % resp.cost_usd),
                    (b"x-modelyard-latency-ms", b"%.1f" % resp.latency_ms), content_length(body))
        if resp.decision is not None and resp.decision.fallbacks:
            headers.append((b"x-modelyard-fallbacks", ",".join(resp.decision.fallbacks).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    for prefix in ("/v1", ""):
        app.add_route("POST", prefix + "/embeddings", embeddings)
