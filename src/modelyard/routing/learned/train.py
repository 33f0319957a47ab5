"""Training: routing data → embeddings and features → a fitted router (→ a router file).

Embedding is the slow part (~5–20 ms a prompt), so it is done once per data set and the arrays are
shared by cross-validation folds and by the different router kinds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...embed.backends import DIMS as EMBED_DIMS
from ...embed.backends import MINILM, get_embedder
from .base import EMBED_TOKENS, KINDS, LearnedRouter
from .data import DataError, Example, models_of, require_models
from .textfeatures import text_features

TRAINABLE = ("knn", "classifier", "mf")
BULK_BATCH = 8  # prompts per model run when embedding a data set (see docs/BENCHMARKS.md)


def embed_prompts(prompts: Sequence[str], backend: str = MINILM, *, batch: int = 256,
                  max_tokens: int | None = EMBED_TOKENS, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Embeddings of many prompts as routers see them (cut at max_tokens), in chunks of `batch`
    (progress gets the count done after each); the model runs BULK_BATCH length-sorted prompts at once."""
    emb = get_embedder(backend)
    out = np.empty((len(prompts), emb.dim), dtype=np.float32)
    for start in range(0, len(prompts), batch):
        out[start:start + batch] = emb.embed(prompts[start:start + batch], max_tokens=max_tokens,
                                             batch_size=BULK_BATCH)
        if progress:
            progress(min(start + batch, len(prompts)))
    return out


def needs_embedding(kind: str, params: dict[str, Any] | None = None) -> bool:
    """Whether training `kind` with these parameters reads embeddings (else none are computed)."""
    from . import classifier, knn, mf  # noqa: F401  (register the kinds)

    cls = KINDS.get(kind)
    return cls is None or cls.needs_embedding(dict(params or {}))


def router_inputs(router: LearnedRouter, prompts: Sequence[str],
                  progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (batched; zeros when the router ignores them) and features of many prompts."""
    if router.uses_embedding:
        E = embed_prompts(prompts, router.embedding, max_tokens=router.embed_tokens, progress=progress)
    else:
        E = np.zeros((len(prompts), router.dim), dtype=np.float32)
    return E, (features_of(prompts) if router.uses_features else None)


def features_of(prompts: Sequence[str]) -> np.ndarray:
    return np.array([text_features(p) for p in prompts], dtype=np.float32)


def pick_models(examples: Sequence[Example], strong: str | None, weak: str | None, where: str, *,
                sparse: bool = False) -> list[str]:
    """[strong, weak] when a pair is named, else every model scored on all examples (N-model).

    sparse (data from the request log): examples may score only some models; every model seen counts.
    """
    if (strong is None) != (weak is None):
        raise DataError("name both --strong and --weak, or neither (to train on every model in the data)")
    seen: dict[str, int] = {}
    for ex in examples:
        for m in ex.scores:
            seen[m] = seen.get(m, 0) + 1
    if strong is not None and weak is not None:
        if strong == weak:
            raise DataError("--strong and --weak must be different models")
        if sparse:
            for m in (strong, weak):
                if m not in seen:
                    raise DataError(f"{where}: no example scores '{m}' (models seen: {', '.join(seen) or 'none'})")
        else:
            require_models(examples, [strong, weak], where)
        return [strong, weak]
    models = sorted(seen, key=lambda m: -seen[m]) if sparse else models_of(examples)
    if len(models) < 2:
        raise DataError(f"{where}: a router needs at least two models scored on every example; found "
                        f"{', '.join(models) or 'none'}")
    return models


def score_matrix(examples: Sequence[Example], models: Sequence[str]) -> np.ndarray:
    """(n, m) scores; NaN where an example does not score a model (sparse data)."""
    nan = float("nan")
    return np.array([[ex.scores.get(m, nan) for m in models] for ex in examples], dtype=np.float32)


def mean_costs(examples: Sequence[Example], models: Sequence[str]) -> dict[str, float]:
    """Mean USD per prompt of each model, for models the data prices."""
    out = {}
    for m in models:
        vals = [ex.cost[m] for ex in examples if m in ex.cost]
        if vals:
            out[m] = float(np.mean(vals))
    return out


def fit_router(kind: str, examples: Sequence[Example], *, strong: str | None = None, weak: str | None = None,
               backend: str = MINILM, E: np.ndarray | None = None, F: np.ndarray | None = None,
               where: str = "data", params: dict[str, Any] | None = None, sparse: bool = False) -> LearnedRouter:
    """Train a router of `kind` on scored examples (embeddings computed unless given)."""
    if kind not in TRAINABLE:
        raise DataError(f"unknown router kind '{kind}'; one of: {', '.join(TRAINABLE)}")
    from . import classifier, knn, mf  # noqa: F401  (register the kinds)

    models = pick_models(examples, strong, weak, where, sparse=sparse)
    prompts = [ex.prompt for ex in examples]
    Y = score_matrix(examples, models)
    t0 = time.perf_counter()
    if E is None:
        E = embed_prompts(prompts, backend) if needs_embedding(kind, params) else \
            np.zeros((len(prompts), EMBED_DIMS[backend]), dtype=np.float32)
    if F is None:
        F = features_of(prompts)
    costs = mean_costs(examples, models)
    if strong is None:  # N models: the default pair is the best model vs the cheapest (else the worst)
        means = np.nanmean(Y, axis=0)
        strong = models[int(np.argmax(means))]
        rest = [m for m in models if m != strong]
        weak = min(rest, key=lambda m: costs.get(m, float("inf"))) if all(m in costs for m in rest) \
            else min(rest, key=lambda m: float(means[models.index(m)]))
    cls = KINDS[kind]
    router = cls.fit(models, backend, E, F, Y, strong=strong, weak=weak, costs=costs,  # type: ignore[attr-defined]
                     info={"examples": len(examples), "trained_at": int(time.time())}, **(params or {}))
    router.calib = (router.in_sample() if hasattr(router, "in_sample") else router.predict_arrays(E, F)).astype(
        np.float32)
    router.info["train_seconds"] = round(time.perf_counter() - t0, 2)
    return router
