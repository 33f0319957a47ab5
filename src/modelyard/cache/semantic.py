"""The semantic index: per scope, a preallocated float32 matrix of unit vectors scanned with one
matrix-vector product.

A lookup reads its own scope only (tenant + group + system prompt + parameters + earlier turns), so
multi-turn and multi-tenant traffic scans a few rows; a single-turn FAQ bot puts everything in one
scope, where the exact scan costs ~0.07 ms at 1k entries, a few ms at 10k and tens of ms at 100k.
It runs in the worker thread that embeds the turn (`nearest`), never on the event loop. Measured
against float16/int8 matrices and HNSW indexes (usearch, faiss) in bench/semantic_lookup.py and
docs/BENCHMARKS.md "Cache": the exact float32 scan needs no build (an HNSW graph of 100k
vectors takes minutes to build, on every restart), loses no hits and has no index to keep in step
with evictions. Rows are appended in place (capacity doubles) and removed by moving the last row into
the hole, so adding and forgetting are O(1) and a lookup never copies the matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from ..embed.backends import Embedder


class ScopeIndex:
    __slots__ = ("keys", "mat", "n", "rows")

    def __init__(self, dim: int, capacity: int = 8) -> None:
        import numpy as np

        self.mat = np.empty((capacity, dim), dtype=np.float32)
        self.n = 0
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}

    def add(self, key: str, vec: np.ndarray) -> None:
        import numpy as np

        row = self.rows.get(key)
        if row is not None:
            self.mat[row] = vec
            return
        if self.n == len(self.mat):
            grown = np.empty((2 * len(self.mat), self.mat.shape[1]), dtype=np.float32)
            grown[:self.n] = self.mat
            self.mat = grown
        self.mat[self.n] = vec
        self.keys.append(key)
        self.rows[key] = self.n
        self.n += 1

    def remove(self, key: str) -> None:
        row = self.rows.pop(key, None)
        if row is None:
            return
        last = self.n - 1
        moved = self.keys.pop()
        if row != last:
            self.mat[row] = self.mat[last]
            self.keys[row] = moved
            self.rows[moved] = row
        self.n = last

    def best(self, vec: np.ndarray) -> tuple[str, float] | None:
        """The most similar entry and its cosine similarity. Safe to call from a worker thread while
        the event loop adds and removes rows: it reads one (matrix, count) pair, and a row that moved
        meanwhile is caught by `SemanticIndex.similarity`, which the caller checks on the loop."""
        mat, n = self.mat, self.n
        if n == 0:
            return None
        sims = mat[:n] @ vec
        i = int(sims.argmax())
        keys = self.keys
        if i >= len(keys):  # rows removed while scanning
            return None
        return keys[i], float(sims[i])


class SemanticIndex:
    """Scopes → ScopeIndex, and key → scope so a dropped entry is forgotten in O(1)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.scopes: dict[str, ScopeIndex] = {}
        self.where: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.where)

    def add(self, scope: str, key: str, vec: np.ndarray) -> None:
        idx = self.scopes.get(scope)
        if idx is None:
            idx = self.scopes[scope] = ScopeIndex(self.dim)
        idx.add(key, vec)
        self.where[key] = scope

    def remove(self, keys: list[str]) -> None:
        for key in keys:
            scope = self.where.pop(key, None)
            if scope is None:
                continue
            idx = self.scopes[scope]
            idx.remove(key)
            if idx.n == 0:
                del self.scopes[scope]

    def best(self, scope: str, vec: np.ndarray) -> tuple[str, float] | None:
        idx = self.scopes.get(scope)
        return idx.best(vec) if idx is not None else None

    def similarity(self, scope: str, key: str, vec: np.ndarray) -> float | None:
        """`key`'s cosine similarity with `vec` now (None: it left `scope`). O(dim), on the loop."""
        if self.where.get(key) != scope:
            return None
        idx = self.scopes[scope]
        return float(idx.mat[idx.rows[key]] @ vec)

    def clear(self) -> None:
        self.scopes.clear()
        self.where.clear()


def nearest(embedder: Embedder, text: str, index: SemanticIndex | None,
            scope: str) -> tuple[np.ndarray | None, tuple[str, float] | None]:
    """The turn's vector and the scope's most similar entry, in one worker-thread call (the scan of
    a large scope costs milliseconds: it must not run on the event loop)."""
    vec = embed_turn(embedder, text)
    if vec is None or index is None:
        return vec, None
    return vec, index.best(scope, vec)


def embed_turn(embedder: Embedder, text: str) -> np.ndarray | None:
    """The unit vector of a user turn, or None when the turn is longer than the model reads (MiniLM:
    256 word pieces): two long turns that differ after the cut would look identical. Runs in a
    worker thread."""
    tokenizer = getattr(embedder, "tokenizer", None)
    if tokenizer is not None:
        from ..embed.backends import MAX_TOKENS

        if len(tokenizer.encode(text).ids) >= MAX_TOKENS:
            return None
    vec: np.ndarray = embedder.embed([text])[0]
    return vec
