"""`provider: local`: embeddings from the int8 MiniLM (all-MiniLM-L6-v2) that the learned router
uses, in process, no key and no network (extra `learned`). The model is loaded once per process
(embed/backends.py), on the first request, in a worker thread; every call runs off the event loop.
Vectors have 384 dimensions, unit length; texts longer than 256 word pieces are cut (the model's limit).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..deployment import Deployment
from ..errors import BadRequest, Unavailable
from ..types import EmbeddingRequest, EmbeddingResponse, Usage
from .base import Provider

MODELS = ("minilm", "all-minilm-l6-v2", "minilm-l6-v2-int8")


class LocalProvider(Provider):
    kind = "local"

    def prepare(self, dep: Deployment) -> None:
        if dep.model.lower() not in MODELS:
            raise ValueError(f"deployment '{dep.name}': provider local serves the MiniLM embedder; "
                             f"model must be one of {', '.join(MODELS)}, got {dep.model!r}")
        dep.adapter = self

    def embeds(self, dep: Deployment) -> bool:
        return True

    async def embed(self, req: EmbeddingRequest, dep: Deployment) -> EmbeddingResponse:
        if req.inputs and not isinstance(req.inputs[0], str):
            raise BadRequest(f"deployment '{dep.name}' (local MiniLM) embeds text, not token arrays", param="input")
        if req.dimensions is not None and req.dimensions != 384:
            raise BadRequest(f"deployment '{dep.name}' (local MiniLM) returns 384 dimensions; "
                             f"it cannot shorten them to {req.dimensions}", param="dimensions")
        texts = [str(t) for t in req.inputs]
        vectors, tokens = await asyncio.to_thread(_embed, texts, dep)
        return EmbeddingResponse(vectors=vectors, model=dep.model, usage=Usage(input_tokens=tokens))


def _embed(texts: list[str], dep: Deployment) -> tuple[list[list[float]], int]:
    from ..embed.backends import MINILM, EmbeddingError, get_embedder

    try:
        emb: Any = get_embedder(MINILM)
    except EmbeddingError as e:
        raise Unavailable(f"deployment '{dep.name}': {e}", deployment=dep.name) from None
    tokens = sum(len(s) for s in emb._pieces(texts))  # word pieces, [CLS]/[SEP] included, as the model reads them
    return emb.embed(texts).tolist(), tokens
