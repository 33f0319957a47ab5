"""`POST /embeddings` of the OpenAI protocol (OpenAI, Azure OpenAI and compatible servers): the
same URL base and headers as the deployment's chat calls, vectors asked for as floats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..deployment import Deployment
from ..types import EmbeddingRequest, EmbeddingResponse, Usage
from .base import MALFORMED
from .http import bad_body, load_json
from .openai_errors import map_error

if TYPE_CHECKING:
    from .openai import OpenAIProvider


def embeddings_url(chat_url: str) -> str:
    """The deployment's embeddings URL, from its chat-completions URL (query string kept: Azure's version)."""
    path, sep, query = chat_url.partition("?")
    return path.removesuffix("/chat/completions") + "/embeddings" + sep + query


def to_wire(req: EmbeddingRequest, dep: Deployment) -> dict[str, Any]:
    body: dict[str, Any] = {"model": dep.model, "input": req.inputs, "encoding_format": "float"}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    if req.user is not None:
        body["user"] = req.user
    return body


def from_wire(raw: bytes, dep: Deployment, n: int) -> EmbeddingResponse:
    doc = load_json(raw, dep)
    try:
        data = sorted(doc["data"], key=lambda d: d.get("index", 0))
        vectors = [[float(x) for x in d["embedding"]] for d in data]
        u = doc.get("usage") or {}
        tokens = int(u.get("prompt_tokens") or u.get("total_tokens") or 0)
    except MALFORMED:
        raise bad_body(dep, "returned a body that is not an embeddings list", raw) from None
    if len(vectors) != n:
        raise bad_body(dep, f"returned {len(vectors)} embeddings for {n} inputs", raw)
    return EmbeddingResponse(vectors=vectors, model=doc.get("model") or dep.model, usage=Usage(input_tokens=tokens))


async def embed(provider: OpenAIProvider, req: EmbeddingRequest, dep: Deployment) -> EmbeddingResponse:
    ep = provider.endpoint_of(dep)
    status, headers, raw = await provider.post(dep, ep, embeddings_url(ep.url), orjson.dumps(to_wire(req, dep)))
    if status >= 400:
        raise map_error(status, raw, headers, dep)
    return from_wire(raw, dep, len(req.inputs))
