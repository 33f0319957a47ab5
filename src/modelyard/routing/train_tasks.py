"""Train and measure the task classifier (offline; needs numpy, which the runtime does not).

    python -m modelyard.routing.train_tasks tests/data/tasks.jsonl            # reports only
    python -m modelyard.routing.train_tasks tests/data/tasks.jsonl --write    # + ship the weights

The model is softmax regression over `classify.featurize` features, fit by full-batch Adam with an
L2 penalty, on the hand-written prompts plus the `train` split of the real prompts (task_eval.py).
`train_calibrated` fits a temperature on out-of-fold predictions and folds it into the weights, so
the shipped model's probabilities are calibrated at no cost per request. Reports: the real-prompt
test splits (first, enlarged, and each later source's own: per class, confusion, reliability),
and `cross_validate` on the hand-written set (its folds held out, the real training prompts always
in) against the keyword baselines, with the model's confusion; docs/ROUTING.md carries the tables
it prints.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .classify import MODEL_FILE, TaskModel, featurize, keyword_task, lexicon_task, window
from .features import TASKS
from .task_eval import ece_of, evaluate, fit_temperature, real_training_examples, softmax, test_splits
from .task_eval import markdown as real_markdown

Example = tuple[str, str]  # (text, task)
# `chat` is the answer for prompts of no clear type, and most real prompts are chat: at full weight
# it drew clear requests phrased conversationally ("Can you rewrite...") to `chat`. Chosen on the
# out-of-fold clear-type accuracy of the real training prompts (docs/ROUTING.md), not the test split.
CHAT_WEIGHT = 0.5


def load_examples(path: str | Path) -> list[Example]:
    out: list[Example] = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if d["task"] not in TASKS:
            raise ValueError(f"{path}:{i}: unknown task {d['task']!r}")
        out.append((d["text"], d["task"]))
    return out


def train(examples: list[Example], *, l2: float = 3e-3, steps: int = 150, lr: float = 0.08,
          min_count: int = 2, prune: float = 0.05, chat_weight: float | None = None) -> TaskModel:
    """Fit the model on `examples`; features seen fewer than `min_count` times are dropped, and so
    are features whose weights all stay below `prune` (they would only make the file bigger).
    `chat` examples weigh `chat_weight` (`CHAT_WEIGHT` by default) in the loss, the others 1."""
    feats = [featurize(window(t)) for t, _ in examples]
    counts = Counter(f for fs in feats for f in set(fs))
    vocab = {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= min_count))}
    n, v, k = len(examples), len(vocab), len(TASKS)
    # Sparse rows as (row, column) index pairs: a prompt has ~100 features out of thousands.
    pairs = sorted({(r, vocab[f]) for r, fs in enumerate(feats) for f in fs if f in vocab})
    rows = np.array([r for r, _ in pairs], dtype=np.int64)  # presence, not counts: a repeated
    cols = np.array([c for _, c in pairs], dtype=np.int64)  # word is not more evidence
    starts = np.searchsorted(rows, np.arange(n))
    y = np.zeros((n, k), dtype=np.float64)
    y[np.arange(n), [TASKS.index(task) for _, task in examples]] = 1.0
    cw = CHAT_WEIGHT if chat_weight is None else chat_weight
    sw = np.array([cw if task == "chat" else 1.0 for _, task in examples])
    sw = (sw * n / sw.sum())[:, None]  # normalised: the L2 penalty keeps its strength
    w = np.zeros((v, k), dtype=np.float64)
    b = np.zeros(k, dtype=np.float64)
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        z = np.add.reduceat(w[cols], starts, axis=0) + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = sw * (p - y) / n
        gw = l2 * w
        np.add.at(gw, cols, g[rows])
        gb = g.sum(axis=0)
        mw = b1 * mw + (1 - b1) * gw
        vw = b2 * vw + (1 - b2) * gw * gw
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        w -= lr * (mw / c1) / (np.sqrt(vw / c2) + eps)
        b -= lr * (mb / c1) / (np.sqrt(vb / c2) + eps)
    keep = np.abs(w).max(axis=1) >= prune
    names = list(vocab)
    weights = {names[j]: w[j].tolist() for j in np.flatnonzero(keep)}
    return TaskModel(list(TASKS), b.tolist(), weights)


def folds(examples: list[Example], k: int, seed: int = 0) -> list[list[int]]:
    """Stratified folds: each class spread evenly, order fixed by `seed`."""
    rng = random.Random(seed)
    out: list[list[int]] = [[] for _ in range(k)]
    by_task: dict[str, list[int]] = {}
    for i, (_, task) in enumerate(examples):
        by_task.setdefault(task, []).append(i)
    offset = 0
    for task in TASKS:
        idx = by_task.get(task, [])
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            out[(j + offset) % k].append(i)
        offset += len(idx)
    return out


BASELINES = {"keywords": keyword_task, "lexicon": lexicon_task}


def cross_validate(examples: list[Example], k: int = 5, seed: int = 0, extra: list[Example] | None = None,
                   **train_kw: Any) -> dict[str, Any]:
    """Per-class held-out accuracy (recall) of the model and of the two keyword baselines, also split
    by script (ASCII-only prompts vs the rest: other languages). `extra` examples join every
    training fold and are never held out (the real prompts' training split)."""
    ok: dict[str, Counter[str]] = {name: Counter() for name in ("model", *BASELINES)}
    total: Counter[str] = Counter()
    confusion: dict[str, Counter[str]] = {t: Counter() for t in TASKS}  # the model's: true -> answers
    for held in folds(examples, k, seed):
        held_set = set(held)
        model = train([e for i, e in enumerate(examples) if i not in held_set] + (extra or []), **train_kw)
        for i in held:
            text, task = examples[i]
            groups = (task, "en" if text.isascii() else "non-en", "all")
            total.update(groups)
            guesses = {"model": model.predict(text)[0], **{n: f(text) for n, f in BASELINES.items()}}
            confusion[task][guesses["model"]] += 1
            for name, guess in guesses.items():
                if guess == task:
                    ok[name].update(groups)
    def row(g: str) -> dict[str, Any]:
        return {"n": total[g], **{name: ok[name][g] / total[g] for name in ok}}
    return {"folds": k, "examples": total["all"], "per_class": {t: row(t) for t in TASKS if total[t]},
            "overall": row("all"), "by_script": {s: row(s) for s in ("en", "non-en") if total[s]},
            "confusion": {t: dict(c) for t, c in confusion.items() if c}}


def confusion_markdown(confusion: dict[str, dict[str, int]]) -> str:
    """A confusion matrix (rows: true task; columns: the model's answers) as a markdown table."""
    cols = [t for t in TASKS if any(t in row for row in confusion.values())]
    lines = ["| true \\ predicted | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {t} | " + " | ".join(str(row.get(c, "")) for c in cols) + " |" for t, row in confusion.items()]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    lines = ["| task | n | model | keyword list | cue lexicon |", "|---|---:|---:|---:|---:|"]
    def line(label: str, r: dict[str, Any]) -> str:
        return f"| {label} | {r['n']} | {r['model']:.1%} | {r['keywords']:.1%} | {r['lexicon']:.1%} |"
    lines += [line(t, r) for t, r in report["per_class"].items()]
    lines.append(line("**all**", report["overall"]))
    lines += [line(f"*{s} prompts*", r) for s, r in report["by_script"].items()]
    return "\n".join(lines)


THRESHOLD = 0.3  # below this calibrated probability: `chat` (chosen on out-of-fold predictions, see docs)


def train_calibrated(examples: list[Example], k: int = 5, seed: int = 0, threshold: float = THRESHOLD,
                     calibrate_from: int = 0, **train_kw: Any) -> tuple[TaskModel, dict[str, Any]]:
    """`train` on all of `examples`, with its weights divided by the temperature that calibrates the
    out-of-fold probabilities of a k-fold run over the same examples — of those from index
    `calibrate_from` on (the real prompts: the hand-written ones are easier than traffic, and a
    temperature fitted on them leaves the model overconfident on real prompts); `threshold` set."""
    logits = np.zeros((len(examples), len(TASKS)))
    for held in folds(examples, k, seed):
        held_set = set(held)
        fold_model = train([e for i, e in enumerate(examples) if i not in held_set], **train_kw)
        for i in held:
            logits[i] = fold_model.scores(featurize(window(examples[i][0])))
    y = np.array([TASKS.index(t) for _, t in examples])
    logits, y = logits[calibrate_from:], y[calibrate_from:]
    temp = fit_temperature(logits, y)
    raw = train(examples, **train_kw)
    model = TaskModel(list(TASKS), [b / temp for b in raw.bias],
                      {f: [x / temp for x in w] for f, w in raw.weights.items()}, threshold)
    probs = softmax(logits / temp)
    top = probs.max(axis=1)
    sweep = {t: (float((top >= t).mean()), float((probs.argmax(axis=1) == y)[top >= t].mean()))
             for t in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6)}
    return model, {"temperature": temp, "oof_ece_raw": ece_of(softmax(logits), y), "oof_ece": ece_of(probs, y),
                   "oof_accuracy": float((probs.argmax(axis=1) == y).mean()), "threshold_sweep": sweep}


def training_set(hand_path: str | Path) -> list[Example]:
    """The hand-written prompts plus the real prompts' training split (less its look-ups)."""
    return load_examples(hand_path) + real_training_examples()


def main(argv: list[str]) -> None:
    path = argv[0] if argv else "tests/data/tasks.jsonl"
    hand = load_examples(path)
    real_train = real_training_examples()
    model, info = train_calibrated(hand + real_train, calibrate_from=len(hand))
    print(json.dumps(info, indent=1))
    for name, rows in test_splits().items():
        print(f"\nreal prompts, {name} test split (never trained or tuned on):\n")
        print(real_markdown(evaluate(model, rows)))
    print("\nhand-written prompts, 5-fold (real training prompts in every fold):\n")
    cv = cross_validate(hand, extra=real_train)
    print(markdown(cv))
    print("\n" + confusion_markdown(cv["confusion"]))
    if "--write" in argv:
        dest = Path(__file__).parent / "data" / MODEL_FILE
        dest.parent.mkdir(exist_ok=True)
        dest.write_bytes(gzip.compress(orjson.dumps(model.to_json()), mtime=0))
        print(f"wrote {dest} ({dest.stat().st_size} bytes, {len(model.weights)} features)")


if __name__ == "__main__":
    main(sys.argv[1:])
