"""Cross-validation of learned routers: held-out questions (k-fold) and held-out groups (group k-fold
by `source`, e.g. MMLU subject), so a router that memorises topics is caught.

    python -m modelyard.eval.crossval --data mmlu_train.jsonl --strong gpt-4-1106-preview \\
        --weak mixtral-8x7b-instruct-v0.1 [--kinds knn,classifier,mf] [--folds 5] [--cache DIR]

Reports, per router kind and split: APGR and CPT(50 %)/CPT(80 %) as the mean over folds (each fold
evaluated on its own), and APGR of the pooled out-of-fold scores. Embeddings are computed once.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embed.backends import get_embedder
from ..routing.learned.base import EMBED_TOKENS
from ..routing.learned.data import Example, load_jsonl
from ..routing.learned.train import TRAINABLE, embed_prompts, features_of, fit_router
from .metrics import evaluate_scores


@dataclass
class CVResult:
    kind: str
    split: str  # "questions" | "groups"
    fold_apgr: list[float]
    fold_cpt50: list[float]
    fold_cpt80: list[float]
    pooled_apgr: float

    @property
    def apgr(self) -> float:
        return float(np.mean(self.fold_apgr))


def cached_embeddings(prompts: Sequence[str], backend: str, cache: str | None,
                      max_tokens: int = EMBED_TOKENS) -> np.ndarray:
    """Embeddings of prompts, kept in `cache` (a directory) under a hash of the prompts, backend, the
    graph that runs it (MiniLM's int8 or source graph: vectors differ slightly) and cut."""
    if not cache:
        return embed_prompts(prompts, backend, max_tokens=max_tokens)
    graph = str(getattr(get_embedder(backend), "graph", ""))
    key = hashlib.sha256("\x00".join([backend, graph, str(max_tokens), *prompts]).encode()).hexdigest()[:20]
    path = Path(cache) / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    E = embed_prompts(prompts, backend, max_tokens=max_tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, E)
    return E


def folds(n: int, k: int, groups: Sequence[str] | None, seed: int = 0) -> list[np.ndarray]:
    """Test-index sets: random k-fold, or whole groups per fold (greedy balance by size, seeded order)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(n)
        return [np.sort(perm[i::k]) for i in range(k)]
    names = sorted(set(groups))
    rng.shuffle(names)
    sizes = {g: 0 for g in names}
    for g in groups:
        sizes[g] += 1
    load = [0] * k
    fold_of: dict[str, int] = {}
    for g in sorted(names, key=lambda g: -sizes[g]):  # stable: equal sizes keep the shuffled order
        i = int(np.argmin(load))
        fold_of[g] = i
        load[i] += sizes[g]
    idx = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(idx == i) for i in range(k)]


def cross_validate(kind: str, examples: Sequence[Example], E: np.ndarray, F: np.ndarray, strong: str, weak: str,
                   *, k: int = 5, by_group: bool = False, seed: int = 0,
                   params: dict[str, object] | None = None) -> CVResult:
    qs = np.array([ex.scores[strong] for ex in examples])
    qw = np.array([ex.scores[weak] for ex in examples])
    groups = [ex.source or ex.id for ex in examples] if by_group else None
    pooled = np.zeros(len(examples))
    res = CVResult(kind, "groups" if by_group else "questions", [], [], [], 0.0)
    all_idx = np.arange(len(examples))
    for test in folds(len(examples), k, groups, seed):
        train = np.setdiff1d(all_idx, test)
        r = fit_router(kind, [examples[i] for i in train], strong=strong, weak=weak, E=E[train], F=F[train],
                       params=dict(params or {}))
        s = r.preference(r.predict_arrays(E[test], F[test] if r.uses_features else None))
        pooled[test] = s
        m = evaluate_scores(kind, s, qs[test], qw[test])
        res.fold_apgr.append(m.apgr)
        res.fold_cpt50.append(m.cpt50)
        res.fold_cpt80.append(m.cpt80)
    res.pooled_apgr = evaluate_scores(kind, pooled, qs, qw).apgr
    return res


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--strong", required=True)
    ap.add_argument("--weak", required=True)
    ap.add_argument("--kinds", default=",".join(TRAINABLE))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedding", default="minilm-l6-v2-int8")
    ap.add_argument("--cache", help="directory for embedding caches (reused by eval.transfer)")
    a = ap.parse_args(argv)
    examples = load_jsonl(a.data)
    prompts = [ex.prompt for ex in examples]
    E = cached_embeddings(prompts, a.embedding, a.cache)
    F = features_of(prompts)
    print(f"{len(examples)} prompts, {len({ex.source for ex in examples})} groups, {a.folds} folds")
    print(f"{'router':<11} {'held out':<10} {'APGR':>6} {'±sd':>6} {'pooled':>7} {'CPT50':>7} {'CPT80':>7}")
    for kind in a.kinds.split(","):
        for by_group in (False, True):
            r = cross_validate(kind, examples, E, F, a.strong, a.weak, k=a.folds, by_group=by_group, seed=a.seed)
            print(f"{kind:<11} {r.split:<10} {r.apgr:6.3f} {np.std(r.fold_apgr):6.3f} {r.pooled_apgr:7.3f} "
                  f"{np.mean(r.fold_cpt50):7.1%} {np.mean(r.fold_cpt80):7.1%}", flush=True)


if __name__ == "__main__":
    main()
