"""What every learned router shares: prediction, the decision rule, and the router file.

A learned router predicts, for a prompt, the quality each of its models would reach
(`predict(prompt) -> {model: expected quality}`). The decision rule turns that into a choice:

- `threshold` (default): the cheapest model whose predicted quality is less than `threshold` below
  the best predicted quality. With a strong/weak pair this is "strong iff q_strong − q_weak ≥
  threshold" — the router's *preference score*, the number `modelyard eval` sweeps and calibrates;
- `min_quality`: the cheapest model predicted to reach this absolute quality (else the best);
- `lambda`: the model maximising q − λ·cost.

A router file is one `.npz` (no pickles): a JSON header (`format`, `version`, `kind`, `models`,
`embedding`, pair, threshold, costs, parameters) plus the kind's arrays. Loading checks all of it and
raises RouterFileError naming the file and what is wrong.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson

from ...embed.backends import DIMS as EMBED_DIMS
from .textfeatures import FEATURE_NAMES, text_features

FORMAT = "modelyard-router"
VERSION = 1
# Word pieces of a prompt that routers embed (the model takes 256). Cross-validated on MMLU and the
# synthetic kinds, every cut down to 24 scores as 256 does (within ±0.007 APGR, inside a fold's
# noise), and the embedding costs ~0.27 ms per word piece on one core: 24 keeps a decision under
# 10 ms. Stored per router file (files without it used 256).
EMBED_TOKENS = 24


class RouterFileError(ValueError):
    """A router file is missing, corrupt or of an unknown kind/version."""


class LearnedRouter:
    """Base class: subclasses set `kind`, implement `_predict(E, F)` and their array (de)serialisation."""

    kind: ClassVar[str] = ""
    uses_features: bool = False
    uses_embedding: bool = True  # False: predictions ignore the embedding, which is then never computed

    def __init__(self, models: Sequence[str], embedding: str, *, strong: str | None = None,
                 weak: str | None = None, threshold: float | None = None,
                 costs: dict[str, float] | None = None, calib: np.ndarray | None = None,
                 info: dict[str, Any] | None = None, embed_tokens: int | None = EMBED_TOKENS) -> None:
        self.models = list(models)
        self.index = {m: i for i, m in enumerate(self.models)}
        self.embedding = embedding
        self.dim = EMBED_DIMS[embedding]
        self.strong, self.weak = strong, weak
        self.threshold = threshold
        self.costs = dict(costs or {})
        self.calib = calib  # predictions on the training prompts, for calibration without data
        self.info = dict(info or {})
        self.embed_tokens = embed_tokens
        self._embedder: Any = None

    # --- prediction ------------------------------------------------------------------------------
    def embedder(self) -> Any:
        if self._embedder is None:
            from ...embed.backends import get_embedder

            self._embedder = get_embedder(self.embedding)
        return self._embedder

    def features(self, prompts: Sequence[str]) -> np.ndarray:
        return np.array([text_features(p) for p in prompts], dtype=np.float32).reshape(len(prompts),
                                                                                         len(FEATURE_NAMES))

    @classmethod
    def needs_embedding(cls, params: dict[str, Any]) -> bool:
        """Whether a router of this kind trained with these parameters reads prompt embeddings."""
        return True

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """Embeddings of prompts; zeros (no model run or loaded) when this router ignores them."""
        if not self.uses_embedding:
            return np.zeros((len(prompts), self.dim), dtype=np.float32)
        return self.embedder().embed(prompts, max_tokens=self.embed_tokens)

    def embed_key(self, prompt: str) -> str:
        """What `embed` reads of a prompt (its first `embed_tokens` words for MiniLM): a cache key
        that does not keep a long prompt alive, shared by prompts that differ only past the cut."""
        return self.embedder().key(prompt, self.embed_tokens) if self.uses_embedding else prompt

    def inputs(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Embeddings (and text features, for kinds that use them) of some prompts."""
        return self.embed(prompts), (self.features(prompts) if self.uses_features else None)

    def predict_arrays(self, E: np.ndarray, F: np.ndarray | None) -> np.ndarray:
        """(n, len(models)) predicted qualities from precomputed embeddings/features."""
        return self._predict(np.asarray(E, dtype=np.float32), F)

    def _predict(self, E: np.ndarray, F: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def predict_batch(self, prompts: Sequence[str]) -> np.ndarray:
        return self.predict_arrays(*self.inputs(prompts))

    def predict(self, prompt: str) -> dict[str, float]:
        row = self.predict_batch([prompt])[0]
        return {m: float(row[i]) for i, m in enumerate(self.models)}

    def pair(self, strong: str | None = None, weak: str | None = None) -> tuple[int, int]:
        """Column indexes of the strong/weak pair (defaults: the pair the router was trained for)."""
        s, w = strong or self.strong, weak or self.weak
        if s is None or w is None:
            raise ValueError("this router has no default strong/weak pair: name both models")
        for name in (s, w):
            if name not in self.index:
                raise ValueError(f"model '{name}' is not one this router predicts ({', '.join(self.models)})")
        return self.index[s], self.index[w]

    def preference(self, Q: np.ndarray, strong: str | None = None, weak: str | None = None) -> np.ndarray:
        """Preference for the strong model (higher → strong) from predicted qualities."""
        si, wi = self.pair(strong, weak)
        return Q[:, si] - Q[:, wi]

    # --- online learning (kinds that support it override) ----------------------------------------
    def add_examples(self, E: np.ndarray, F: np.ndarray | None, Y: np.ndarray) -> None:
        raise NotImplementedError(f"the {self.kind} router cannot learn online; retrain it with `modelyard train`")

    # --- file format -----------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _from_file(cls, header: dict[str, Any], arrays: dict[str, np.ndarray], common: dict[str, Any]) -> LearnedRouter:
        raise NotImplementedError

    def header(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "models": self.models,
                "embedding": self.embedding, "strong": self.strong, "weak": self.weak,
                "threshold": self.threshold, "costs": self.costs, "features": list(FEATURE_NAMES),
                "embed_tokens": self.embed_tokens,
                "params": self._params(), "info": self.info}

    def save(self, path: str | Path) -> None:
        arrays: dict[str, Any] = dict(self._arrays())
        if self.calib is not None:
            arrays["calib"] = self.calib.astype(np.float32)
        arrays["header"] = np.frombuffer(orjson.dumps(self.header()), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        tmp = Path(str(path) + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)


KINDS: dict[str, type[LearnedRouter]] = {}


def register_kind(cls: type[LearnedRouter]) -> type[LearnedRouter]:
    KINDS[cls.kind] = cls
    return cls


def load_router(path: str | Path) -> LearnedRouter:
    """Read a router file; RouterFileError says what is wrong and what to do."""
    from . import classifier, knn, mf  # noqa: F401  (register the kinds)

    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise RouterFileError(f"router file {p} not found; train one with `modelyard train ... -o {p}`") from None
    except OSError as e:
        raise RouterFileError(f"router file {p}: cannot read: {e.strerror}") from None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = orjson.loads(arrays.pop("header").tobytes())
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, orjson.JSONDecodeError):
        raise RouterFileError(f"router file {p} is corrupt or not a modelyard router file "
                              "(retrain it with `modelyard train`)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RouterFileError(f"router file {p} is not a modelyard router file")
    if header.get("version") != VERSION:
        raise RouterFileError(f"router file {p} has format version {header.get('version')}; this modelyard "
                              f"reads version {VERSION}: retrain it with `modelyard train`")
    kind = header.get("kind")
    cls = KINDS.get(str(kind))
    if cls is None:
        raise RouterFileError(f"router file {p}: unknown router kind {kind!r}; one of: {', '.join(sorted(KINDS))}")
    if header.get("features", list(FEATURE_NAMES)) != list(FEATURE_NAMES):
        raise RouterFileError(f"router file {p} was trained with other text features; retrain it")
    models = header.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise RouterFileError(f"router file {p}: header has no model list")
    if header.get("embedding") not in EMBED_DIMS:
        raise RouterFileError(f"router file {p}: unknown embedding backend {header.get('embedding')!r}")
    calib = arrays.pop("calib", None)
    common = {"models": models, "embedding": header["embedding"], "strong": header.get("strong"),
              "weak": header.get("weak"), "threshold": header.get("threshold"),
              "costs": header.get("costs") or {}, "calib": calib, "info": header.get("info") or {},
              "embed_tokens": header.get("embed_tokens")}
    try:
        router = cls._from_file(header, arrays, common)
    except (KeyError, ValueError, TypeError) as e:
        raise RouterFileError(f"router file {p} is incomplete or inconsistent ({e}); retrain it") from None
    return router


# --- decision rule -------------------------------------------------------------------------------------
def choose_many(Q: np.ndarray, costs: np.ndarray, *, threshold: float | None = None,
                min_quality: float | None = None, lam: float | None = None) -> np.ndarray:
    """Index of the model to call for every row of predicted qualities Q (n, m), given per-model costs.

    threshold: walking from the cheapest model up, take the first one that no pricier model is
    predicted to beat by `threshold` or more (the priciest always qualifies). For a pair that is
    exactly "the dear model iff q_dear − q_cheap ≥ threshold", for any sign of threshold.
    """
    Q = np.atleast_2d(np.asarray(Q, dtype=np.float64))
    costs = np.asarray(costs, dtype=np.float64)
    if lam is not None:
        return np.argmax(Q - lam * costs[None, :], axis=1)
    order = np.argsort(costs, kind="stable")
    Qs = Q[:, order]
    if min_quality is not None:
        ok = Qs >= min_quality
        first = np.argmax(ok, axis=1)
        return np.where(ok.any(axis=1), order[first], np.argmax(Q, axis=1))
    t = 0.0 if threshold is None else threshold
    # best quality among strictly pricier models (−inf for the priciest)
    pricier = np.full_like(Qs, -np.inf)
    if Qs.shape[1] > 1:
        pricier[:, :-1] = np.maximum.accumulate(Qs[:, :0:-1], axis=1)[:, ::-1]
    ok = (pricier - Qs) < t
    return order[np.argmax(ok, axis=1)]


def choose(q: np.ndarray, costs: np.ndarray, **rule: Any) -> int:
    """`choose_many` for one prompt."""
    return int(choose_many(np.asarray(q)[None, :], costs, **rule)[0])


def load_npz_arrays(arrays: dict[str, np.ndarray], *names: str) -> list[np.ndarray]:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise KeyError(f"missing arrays: {', '.join(missing)}")
    return [arrays[n] for n in names]
