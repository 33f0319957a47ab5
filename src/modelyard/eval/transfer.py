"""Transfer check: train on one data set (mmlu_train.jsonl), evaluate on data of other kinds.

Held-out subjects test transfer within MMLU; this tests it across task kinds — the question the
project's evaluation asks (train on MMLU, evaluate on math word problems, open-ended writing and
reasoning). With the synthetic sets of `eval/synthetic.py` the labels are a stated model, not real
answers: see docs/LEARNED_ROUTING.md for what that can and cannot show.

    python -m modelyard.eval.transfer --train ../shared/data/routing/mmlu_train.jsonl \\
        --strong gpt-4-1106-preview --weak mixtral-8x7b-instruct-v0.1 \\
        [--eval FILE.jsonl ...] [--synthetic-seeds 7,8,9,10,11] \\
        [--router classifier --router knn:k=50 ...] [--cache /tmp/emb]

Prints APGR per router and evaluation file (synthetic kinds: mean ± sd over the seeds — one 400-prompt
set is noisy, ±0.03), next to reference scores that need no training: `words` (longer prompt →
strong), `difficulty` when the records carry it (ordering by the generator's latent difficulty: about
the best a router can do, since the labels are random given it) and `oracle` (the true gap).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

from ..embed.backends import MINILM
from ..routing.learned.data import Example, load_jsonl
from ..routing.learned.train import features_of, fit_router
from . import synthetic
from .crossval import cached_embeddings
from .metrics import evaluate_scores


def parse_router_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'classifier' or 'knn:k=50,tau=0.05' → (kind, params)."""
    kind, _, rest = spec.partition(":")
    params = dict(p.split("=", 1) for p in rest.split(",") if p)
    return kind, params


def difficulties(path: str | Path) -> np.ndarray | None:
    """The generator's latent `difficulty` per record, if every record has one."""
    out = []
    for line in Path(path).read_bytes().splitlines():
        if line.strip():
            d = orjson.loads(line).get("difficulty")
            if not isinstance(d, int | float):
                return None
            out.append(float(d))
    return np.array(out)


def word_counts(examples: Sequence[Example]) -> np.ndarray:
    return np.array([math.log1p(len(ex.prompt.split())) for ex in examples])


def _group(name: str) -> str:
    return name.split("@")[0]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--eval", action="append", default=[], help="evaluation data file (repeat)")
    ap.add_argument("--synthetic-seeds", default="",
                    help="also generate the synthetic kinds for these seeds (e.g. 7,8,9) and report each kind's "
                         "mean ± sd over seeds")
    ap.add_argument("--synthetic-n", type=int, default=400, help="prompts per kind and seed")
    ap.add_argument("--strong", required=True)
    ap.add_argument("--weak", required=True)
    ap.add_argument("--router", action="append", help="kind[:key=value,...] (repeat); default: every kind")
    ap.add_argument("--embedding", default=MINILM)
    ap.add_argument("--cache", help="directory for embedding caches")
    a = ap.parse_args(argv)
    paths = [(Path(p).stem, Path(p)) for p in a.eval]
    if a.synthetic_seeds:
        tmp = Path(tempfile.mkdtemp(prefix="modelyard-synthetic-"))
        for seed in (int(x) for x in a.synthetic_seeds.split(",")):
            for path in synthetic.write(tmp / str(seed), a.synthetic_n, seed):
                paths.append((f"{path.stem}@{seed}", path))
    if not paths:
        ap.error("give --eval FILE and/or --synthetic-seeds")
    train = load_jsonl(a.train)
    specs = a.router or ["knn", "classifier", "mf"]
    E = cached_embeddings([ex.prompt for ex in train], a.embedding, a.cache)
    F = features_of([ex.prompt for ex in train])
    evals = []
    for name, path in paths:
        exs = load_jsonl(path)
        prompts = [ex.prompt for ex in exs]
        evals.append((name, exs, cached_embeddings(prompts, a.embedding, a.cache), features_of(prompts),
                      difficulties(path)))
    groups = list(dict.fromkeys(_group(e[0]) for e in evals))
    width = max(14, *(len(g) for g in groups))
    print(f"{'router':<34}" + "".join(f"{g:>{width + 2}}" for g in groups))

    def row(label: str, scores: list[np.ndarray | None]) -> None:
        by_group: dict[str, list[float]] = {g: [] for g in groups}
        for (name, exs, *_), s in zip(evals, scores, strict=True):
            if s is not None:
                qs = np.array([ex.scores[a.strong] for ex in exs])
                qw = np.array([ex.scores[a.weak] for ex in exs])
                by_group[_group(name)].append(evaluate_scores(label, s, qs, qw).apgr)
        cells = []
        for g in groups:
            v = by_group[g]
            cell = "—" if not v else f"{v[0]:.3f}" if len(v) == 1 else f"{np.mean(v):.3f} ± {np.std(v):.3f}"
            cells.append(f"{cell:>{width + 2}}")
        print(f"{label:<34}" + "".join(cells), flush=True)

    for spec in specs:
        kind, params = parse_router_spec(spec)
        r = fit_router(kind, train, strong=a.strong, weak=a.weak, backend=a.embedding, E=E, F=F,
                       params={k: float(v) for k, v in params.items()})
        row(spec, [r.preference(r.predict_arrays(Ee, Fe if r.uses_features else None))
                   for _, _, Ee, Fe, _ in evals])
    row("words (longer → strong)", [word_counts(exs) for _, exs, *_ in evals])
    row("difficulty (generator's latent)", [d for *_, d in evals])
    row("oracle", [np.array([ex.scores[a.strong] - ex.scores[a.weak] for ex in exs]) for _, exs, *_ in evals])


if __name__ == "__main__":
    main()
