"""Gemini embeddings: `batchEmbedContents` (one call for any number of texts). Gemini reports no
token usage for embeddings, so the input tokens are estimated from the text (tokens.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..deployment import Deployment
from ..errors import BadRequest, ModelyardError
from ..tokens import count_tokens
from ..types import EmbeddingRequest, EmbeddingResponse, Usage
from .base import MALFORMED
from .http import bad_body, load_json

if TYPE_CHECKING:
    from .gemini import GeminiProvider


def to_wire(req: EmbeddingRequest, dep: Deployment) -> dict[str, Any]:
    model = "models/" + dep.model.removeprefix("models/")
    one: dict[str, Any] = {"model": model}
    if req.dimensions is not None:
        one["outputDimensionality"] = req.dimensions
    return {"requests": [{**one, "content": {"parts": [{"text": t}]}} for t in req.inputs]}


def batch_url(generate_url: str) -> str:
    return generate_url.removesuffix(":generateContent") + ":batchEmbedContents"


async def embed(provider: GeminiProvider, req: EmbeddingRequest, dep: Deployment) -> EmbeddingResponse:
    if req.inputs and not isinstance(req.inputs[0], str):
        raise BadRequest(f"deployment '{dep.name}' (gemini) embeds text, not token arrays", param="input")
    from .gemini import error_from_response

    ep = provider.endpoint_of(dep)
    status, headers, raw = await provider.post(dep, ep, batch_url(ep.url), orjson.dumps(to_wire(req, dep)))
    if status >= 300:
        err: ModelyardError = error_from_response(status, raw, headers, dep)
        raise err
    doc = load_json(raw, dep)
    try:
        vectors = [[float(x) for x in e["values"]] for e in doc["embeddings"]]
    except MALFORMED:
        raise bad_body(dep, "returned a body that is not a batchEmbedContents answer", raw) from None
    if len(vectors) != len(req.inputs):
        raise bad_body(dep, f"returned {len(vectors)} embeddings for {len(req.inputs)} inputs", raw)
    tokens = sum(count_tokens(t) for t in req.inputs if isinstance(t, str))
    return EmbeddingResponse(vectors=vectors, model=dep.model, usage=Usage(input_tokens=tokens))
