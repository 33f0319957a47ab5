"""Semantic-cache lookup: the exact scan cache/semantic.py uses against the alternatives, at 1k, 10k
and 100k entries, one thread (the scan runs in the request's worker thread).

Rows (384-dimensional unit vectors, MiniLM's width):
- `float32 scan, one scope`: `ScopeIndex.best` — the whole cache in one scope (an FAQ bot: one tenant,
  one system prompt, single turns), a matrix-vector product over a preallocated contiguous matrix;
- `float32 scan, scopes of 100`: the same entries spread over scopes of 100 (multi-turn, many
  tenants or system prompts): a lookup scans its own scope only;
- `float16 scan` / `int8 scan`: the same matrix stored smaller (numpy has no BLAS path for them);
- `faiss flat`: faiss-cpu's exact inner-product index (SIMD, no BLAS);
- `usearch hnsw` / `faiss hnsw`: approximate (HNSW graphs), with build time and recall.

Queries: `hit` queries are stored vectors moved to cosine ~0.93 (what a paraphrase looks like to the
cache), `miss` queries are random. Recall = share of queries whose best entry is the exact scan's best
(for hits this is whether the hit is found at all: an approximate index can only lose hits, never
serve a wrong one, since the threshold is checked on the true similarity).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python bench/semantic_lookup.py [--sizes 1000,10000,100000]
"""

# ruff: noqa: B023  (each closure is timed within its own loop iteration)
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.cache.semantic import ScopeIndex, SemanticIndex

DIM = 384


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)
    return out


def timed(fn: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[float, float, list[Any]]:
    """(p50 ms, p99 ms, answers) over the queries, after one warm-up call."""
    fn(queries[0])
    times, answers = [], []
    for q in queries:
        t0 = time.perf_counter()
        answers.append(fn(q))
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))], answers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--no-ann", action="store_true", help="skip usearch and faiss (not installed)")
    ap.add_argument("--skip", default="", help="comma-separated rows to leave out: float16, int8, hnsw")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| entries | method | p50 ms | p99 ms | recall (hits) | recall (misses) | build s | memory MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        vecs = unit(rng.standard_normal((n, DIM)))
        picks = rng.integers(0, n, args.queries)
        noise = unit(rng.standard_normal((args.queries, DIM)))
        hits = unit(vecs[picks] + 0.4 * noise)  # cosine ~0.93 to the stored vector
        misses = unit(rng.standard_normal((args.queries, DIM)))
        keys = [f"k{i}" for i in range(n)]

        idx = ScopeIndex(DIM)
        for i in range(n):
            idx.add(keys[i], vecs[i])
        exact_h = timed(idx.best, hits)
        exact_m = timed(idx.best, misses)
        truth_h = [a[0] for a in exact_h[2]]
        truth_m = [a[0] for a in exact_m[2]]

        def row(name: str, fn: Callable[[np.ndarray], Any], build_s: float, mb: float, approx: bool) -> None:
            p50h, p99h, ah = timed(fn, hits)
            p50m, p99m, am = timed(fn, misses)
            rh = sum(a == t for a, t in zip(ah, truth_h, strict=True)) / len(ah)
            rm = sum(a == t for a, t in zip(am, truth_m, strict=True)) / len(am)
            rec = (f"{rh:.3f}", f"{rm:.3f}") if approx else ("exact", "exact")
            print(f"| {n:,} | {name} | {statistics.median([p50h, p50m]):.3f} | {max(p99h, p99m):.3f} | "
                  f"{rec[0]} | {rec[1]} | {build_s:.1f} | {mb:.0f} |", flush=True)

        row("float32 scan, one scope (used)", lambda q: idx.best(q)[0], 0, idx.mat.nbytes / 1e6, False)

        if n >= 100:  # the same entries in scopes of 100: the lookup reads its own scope only
            sem = SemanticIndex(DIM)
            for i in range(n):
                sem.add(f"s{i // 100}", keys[i], vecs[i])

            def scoped(q: np.ndarray) -> Any:
                return sem.best("s0", q)

            p50, p99, _ = timed(scoped, hits)
            print(f"| {n:,} | float32 scan, scopes of 100 | {p50:.3f} | {p99:.3f} | exact | exact | 0 | "
                  f"{n * DIM * 4 / 1e6:.0f} |", flush=True)

        skip = set(args.skip.split(","))
        if "float16" not in skip:
            m16 = vecs.astype(np.float16)
            row("float16 scan", lambda q: keys[int((m16 @ q.astype(np.float16)).argmax())], 0, m16.nbytes / 1e6,
                False)
        if "int8" not in skip:
            m8 = np.round(vecs * 127).astype(np.int8)
            row("int8 scan", lambda q: keys[int((m8 @ np.round(q * 127).astype(np.int32)).argmax())], 0,
                m8.nbytes / 1e6, True)
        if args.no_ann:
            continue
        import faiss
        from usearch.index import Index

        faiss.omp_set_num_threads(1)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(vecs)
        row("faiss flat (exact)", lambda q: keys[int(flat.search(q[None, :], 1)[1][0, 0])], 0, vecs.nbytes / 1e6,
            False)

        if "hnsw" in skip:
            continue
        t0 = time.perf_counter()
        us = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
        us.add(np.arange(n), vecs, threads=1)
        build = time.perf_counter() - t0
        row("usearch hnsw (M 16, ef 64)", lambda q: keys[int(us.search(q, 1, threads=1).keys[0])], build,
            us.memory_usage / 1e6, True)

        t0 = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 128
        hnsw.add(vecs)
        hnsw.hnsw.efSearch = 64
        build = time.perf_counter() - t0
        row("faiss hnsw (M 32, ef 64)", lambda q: keys[int(hnsw.search(q[None, :], 1)[1][0, 0])], build,
            (vecs.nbytes + n * 32 * 2 * 8) / 1e6, True)


if __name__ == "__main__":
    main()
