"""Calibration and held-out measurement of the task classifier on real prompts (offline; numpy).

The real-prompt set (routing/data/real_prompts.jsonl, built by bench/label_real_prompts.py) carries a
fixed `split`: `train` prompts join the 450 hand-written ones for training; `test` prompts are only
ever predicted. Calibration (a temperature) and the confidence threshold are fitted on out-of-fold
predictions of the training examples, never on the test split. `clear` marks prompts of one clear
type among `CLEAR_TYPES`: accuracy is reported on those; the others (advice, look-ups, chat and
prompts whose type is a matter of opinion) are kept for training and for the coverage figures.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from importlib import resources
from typing import Any

import numpy as np

from .classify import UNSURE
from .features import TASKS

REAL_FILE = "real_prompts.jsonl"
# The sources of the first real-prompt test split; its figures stay comparable across versions
# because later sources only add rows (bench/label_real_prompts.py: a split is fixed by the prompt).
FIRST_SOURCES = ("seed", "user", "oasst")
# The sources of the enlarged split; sources added after it get a test split of their own, reported
# apart, so the first and enlarged figures stay comparable.
ENLARGED_SOURCES = (*FIRST_SOURCES, "dolly", "oasst_turn")
LOOKUP_HEAVY = ("dolly15k",)  # sources whose `simple_qa` rows are left out of training (see below)
CLEAR_TYPES = ("code_generation", "code_review", "math", "reasoning", "summarization", "translation",
               "extraction", "classification", "creative_writing")
Example = tuple[str, str]


def load_real(split: str | None = None) -> list[dict[str, Any]]:
    """The labelled real prompts shipped with the package (one split, or all)."""
    text = resources.files(__package__).joinpath("data", REAL_FILE).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def real_training_examples() -> list[Example]:
    """The real prompts the models train on: the `train` split less the look-ups of `LOOKUP_HEAVY`
    sources. Dolly-15k's open-QA rows ("Why is the ocean blue?", "What are ...") are most of its
    sample; on out-of-fold validation of the real training prompts they pulled reasoning,
    extraction and classification requests to `simple_qa` (docs/ROUTING.md). The other sources'
    look-ups stay, so `simple_qa` is still learnt from real prompts."""
    return [(r["text"], r["task"]) for r in load_real("train")
            if not (r["source"] in LOOKUP_HEAVY and r["task"] == "simple_qa")]


def test_splits() -> dict[str, list[dict[str, Any]]]:
    """The held-out test split restricted to `FIRST_SOURCES` ("first"), to `ENLARGED_SOURCES`
    ("enlarged"), and each later source's own test rows (named after the source)."""
    test = load_real("test")
    splits = {"first": [r for r in test if r["source"] in FIRST_SOURCES],
              "enlarged": [r for r in test if r["source"] in ENLARGED_SOURCES]}
    for src in dict.fromkeys(r["source"] for r in test if r["source"] not in ENLARGED_SOURCES):
        splits[src] = [r for r in test if r["source"] == src]
    return splits


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T) (grid, then refined)."""
    def nll(t: float) -> float:
        p = softmax(logits / t)
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
    grid = [0.25 * i for i in range(1, 41)]
    best: float = min(grid, key=nll)
    fine = [best + 0.01 * i for i in range(-25, 26) if best + 0.01 * i > 0.05]
    found: float = min(fine, key=nll)
    return round(found, 3)


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, Any]]]:
    """Expected calibration error (|accuracy - confidence| weighted by bin size) and the table behind it."""
    table = []
    ece = 0.0
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        m = (conf >= lo) & ((conf < hi) if i < bins - 1 else (conf <= hi))
        if not m.any():
            continue
        acc, mean_conf = float(correct[m].mean()), float(conf[m].mean())
        ece += m.sum() / len(conf) * abs(acc - mean_conf)
        table.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(m.sum()), "confidence": mean_conf, "accuracy": acc})
    return float(ece), table


def evaluate(model: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per class (recall), confusion matrix, calibration and abstentions of `model` on the
    clear-type prompts of `rows` (its threshold applied: an unsure `chat` counts as wrong), plus the
    share of the other prompts given a clear type."""
    clear = [r for r in rows if r["clear"]]
    labels = list(TASKS)
    conf_m: dict[str, Counter[str]] = {t: Counter() for t in labels}
    confs, correct_top = [], []
    for r in clear:
        probs = model.probabilities(r["text"])
        top = max(range(len(probs)), key=probs.__getitem__)
        guess = labels[top] if probs[top] >= model.threshold else UNSURE
        conf_m[r["task"]][guess] += 1
        confs.append(probs[top])
        correct_top.append(labels[top] == r["task"])
    conf, corr = np.array(confs), np.array(correct_top, dtype=float)
    ece, table = reliability(conf, corr)
    n = len(clear)
    right = sum(conf_m[t][t] for t in labels)
    coding = sum(conf_m[t][g] for t in ("code_generation", "code_review") for g in ("code_generation", "code_review"))
    answered = conf >= model.threshold
    sel = float(corr[answered].mean()) if answered.any() else 0.0
    others = [r for r in rows if not r["clear"]]
    typed = sum(1 for r in others if model.predict(r["text"])[0] in CLEAR_TYPES and model.predict(r["text"])[0]
                not in (r["task"],))
    return {"n": n, "accuracy": right / n if n else 0.0,
            "accuracy_coding_merged": (right - conf_m["code_generation"]["code_generation"]
                                       - conf_m["code_review"]["code_review"] + coding) / n if n else 0.0,
            "top_accuracy": float(corr.mean()) if n else 0.0, "answered": float(answered.mean()) if n else 0.0,
            "selective_accuracy": sel, "ece": ece, "reliability": table,
            "per_class": {t: {"n": sum(conf_m[t].values()), "right": conf_m[t][t]} for t in labels
                          if sum(conf_m[t].values())},
            "confusion": {t: dict(conf_m[t]) for t in labels if sum(conf_m[t].values())},
            "others": len(others), "others_given_another_clear_type": typed}


def markdown(report: dict[str, Any]) -> str:
    """Per-class table, confusion matrix and reliability table of an `evaluate` report."""
    cols = [t for t in TASKS if any(t in row for row in report["confusion"].values())]
    short = {t: t.replace("code_generation", "code_gen").replace("creative_writing", "writing")
             .replace("classification", "classif").replace("summarization", "summ").replace("extraction", "extract")
             .replace("translation", "transl").replace("reasoning", "reason") for t in TASKS}
    lines = ["| true \\ predicted | n | right | " + " | ".join(short[c] for c in cols) + " |",
             "|---|---:|---:|" + "---:|" * len(cols)]
    for t, row in report["confusion"].items():
        pc = report["per_class"][t]
        lines.append(f"| {t} | {pc['n']} | {pc['right'] / pc['n']:.0%} | "
                     + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    lines.append(f"| **all** | {report['n']} | **{report['accuracy']:.1%}** |" + " |" * len(cols))
    lines += ["", f"top-class accuracy {report['top_accuracy']:.1%}; answered a type for {report['answered']:.0%} "
              f"(accuracy there {report['selective_accuracy']:.1%}); code_generation/code_review merged "
              f"{report['accuracy_coding_merged']:.1%}; ECE {report['ece']:.3f}", "",
              "| confidence | n | mean confidence | accuracy |", "|---|---:|---:|---:|"]
    lines += [f"| {b['bin']} | {b['n']} | {b['confidence']:.2f} | {b['accuracy']:.2f} |" for b in report["reliability"]]
    return "\n".join(lines)


def is_code_or_math(task: str) -> bool:
    """The labels that would send a humanities, role-play or writing prompt to a code or math model."""
    return task in ("code_generation", "code_review", "math")


def ece_of(probs: np.ndarray, y: np.ndarray) -> float:
    """ECE of the top class of each row of `probs` against labels `y`."""
    top = probs.argmax(axis=1)
    return reliability(probs[np.arange(len(y)), top], (top == y).astype(float))[0]


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean([math.log(max(probs[i, t], 1e-12)) for i, t in enumerate(y)]))
