"""Precision and recall of the semantic cache on the labelled pairs (tests/data/cache_pairs.jsonl).

A pair "hits" when the two turns share their meaning markers (cache/key.py) and the cosine of their
MiniLM embeddings reaches the threshold: exactly the test the cache applies inside one scope.

    PYTHONPATH=src python bench/cache_pairs.py [--embedding minilm-l6-v2-int8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from modelyard.cache.key import markers
from modelyard.embed.backends import get_embedder

PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "cache_pairs.jsonl"


def scores(embedding: str) -> list[tuple[dict[str, object], bool, float]]:
    """(pair, same markers, cosine) for every pair."""
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    emb = get_embedder(embedding)
    a = emb.embed([str(p["a"]) for p in pairs])
    b = emb.embed([str(p["b"]) for p in pairs])
    cos = np.einsum("ij,ij->i", a, b)
    return [(p, markers(str(p["a"])) == markers(str(p["b"])), float(c)) for p, c in zip(pairs, cos, strict=True)]


def precision_recall(rows: list[tuple[dict[str, object], bool, float]], threshold: float,
                     use_markers: bool = True) -> tuple[float, float, int, int]:
    """(precision, recall, false hits, missed paraphrases)."""
    tp = fp = fn = 0
    for p, same_markers, c in rows:
        hit = c >= threshold and (same_markers or not use_markers)
        if hit and p["same"]:
            tp += 1
        elif hit:
            fp += 1
        elif p["same"]:
            fn += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    return precision, tp / (tp + fn) if tp + fn else 0.0, fp, fn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedding", default="minilm-l6-v2-int8")
    args = ap.parse_args()
    rows = scores(args.embedding)
    print(f"{len(rows)} pairs ({sum(bool(p['same']) for p, _, _ in rows)} paraphrases)")
    print("threshold | markers+cosine: precision recall (false hits, missed) | cosine only: precision recall")
    for t in (0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96):
        p1, r1, fp1, fn1 = precision_recall(rows, t)
        p2, r2, fp2, fn2 = precision_recall(rows, t, use_markers=False)
        print(f"{t:.2f} | {p1:.3f} {r1:.3f} ({fp1}, {fn1}) | {p2:.3f} {r2:.3f} ({fp2}, {fn2})")
    for p, same, c in sorted(rows, key=lambda r: -r[2]):
        if not p["same"] and same:
            print(f"  near-miss past the markers: {c:.3f} {p['kind']}: {p['a']!r} / {p['b']!r}")
    for p, same, c in rows:
        if p["same"] and not same:
            print(f"  paraphrase split by markers: {c:.3f}: {p['a']!r} / {p['b']!r}",
                  markers(str(p["a"])), markers(str(p["b"])))


if __name__ == "__main__":
    main()
