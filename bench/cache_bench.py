"""Semantic-cache lookup cost at 10k and 100k entries in one scope (the worst case: scopes split
real traffic far finer), three layouts of the same vectors:

- `matrix`: the preallocated float32 matrix cache/semantic.py uses (one matrix-vector product);
- `list`: a Python list of vectors stacked per lookup (what a naive index does);
- `int8`: vectors quantised to int8 (4x less memory), scanned in int32.

Also: the exact lookup (key + memory get) and the embedding of one turn (MiniLM, one core).

    PYTHONPATH=src python bench/cache_bench.py [--sizes 10000,100000] [--rounds 200]
"""

# ruff: noqa: B023  (each closure is timed within its own loop iteration)
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from modelyard.cache.key import exact_key, semantic_scope
from modelyard.cache.semantic import ScopeIndex
from modelyard.types import ChatRequest, Message

DIM = 384


def _timeit(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(p50, p99) in ms."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("layout | entries | p50 ms | p99 ms | memory MB")
    for n in (int(x) for x in args.sizes.split(",")):
        vecs = unit(rng, n)
        queries = unit(rng, 16)
        idx = ScopeIndex(DIM)
        for i in range(n):
            idx.add(f"k{i}", vecs[i])
        as_list = list(vecs)
        q8 = np.round(vecs * 127).astype(np.int8)
        qi = iter(range(10**9))

        def matrix() -> object:
            return idx.best(queries[next(qi) % 16])

        def listed() -> object:
            sims = np.stack(as_list) @ queries[next(qi) % 16]
            return int(sims.argmax())

        def int8() -> object:
            q = np.round(queries[next(qi) % 16] * 127).astype(np.int32)
            return int((q8 @ q).argmax())  # numpy widens int8 @ int32 to int32

        for name, fn, mb in (("matrix float32", matrix, idx.mat.nbytes / 1e6),
                             ("list + stack", listed, vecs.nbytes / 1e6), ("int8 matrix", int8, q8.nbytes / 1e6)):
            p50, p99 = _timeit(fn, args.rounds if n <= 10_000 else max(20, args.rounds // 4))
            print(f"{name} | {n} | {p50:.3f} | {p99:.3f} | {mb:.0f}")
    req = ChatRequest(model="fast", messages=[Message("system", "You are a helpful support agent."),
                                              Message("user", "How do I reset my password on the website?")])
    p50, _ = _timeit(lambda: exact_key(req, "master", "fast"), 2000)
    print(f"exact key (blake2b of the canonical request) | p50 {p50 * 1000:.1f} µs")
    text = req.messages[-1].text()
    p50, _ = _timeit(lambda: semantic_scope(req, "master", "fast", text), 2000)
    print(f"semantic scope (markers + hash) | p50 {p50 * 1000:.1f} µs")
    try:
        from modelyard.cache.semantic import embed_turn
        from modelyard.embed.backends import get_embedder

        emb = get_embedder()
        embed_turn(emb, text)
        p50, p99 = _timeit(lambda: embed_turn(emb, text), 100)
        print(f"MiniLM embedding of the turn | p50 {p50:.2f} ms | p99 {p99:.2f} ms")
    except Exception as e:  # the embedding backend is optional
        print(f"MiniLM embedding: unavailable ({e})")


if __name__ == "__main__":
    main()
