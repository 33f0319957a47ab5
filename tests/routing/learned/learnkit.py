"""Helpers for the learned-routing tests: small deterministic data sets."""

from __future__ import annotations

import os
from pathlib import Path

from modelyard.routing.learned.data import Example, write_jsonl

MMLU_SMALL = Path(os.environ["MODELYARD_TEST_ROUTING_SMALL"])  # 119 questions of ../shared/data (conftest.py)
STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"

HARD = ["prove that theorem {i} holds for every prime number and derive the bound step by step",
        "derive the closed form of the recurrence {i} and prove it by induction",
        "calculate the probability that {i} dice sum to a prime, explain each step"]
EASY = ["hello there, how are you today friend {i}", "say hi to my cat number {i}",
        "what colour is the sky on a sunny day {i}"]


def synthetic(n_each: int = 20, *, three: bool = False) -> list[Example]:
    """Hard prompts: only the strong model is right; easy ones: every model is (a third, mid model
    is right on half the hard ones). Costs per prompt: strong 0.01, mid 0.003, weak 0.001."""
    out = []
    for i in range(n_each):
        for j, t in enumerate(HARD):
            sc = {"strong": 1.0, "weak": 0.0}
            if three:
                sc["mid"] = float((i + j) % 2)
            out.append(Example(f"h{i}-{j}", t.format(i=i), sc, source="hard"))
        for j, t in enumerate(EASY):
            sc = {"strong": 1.0, "weak": 1.0}
            if three:
                sc["mid"] = 1.0
            out.append(Example(f"e{i}-{j}", t.format(i=i), sc, source="easy"))
    for ex in out:
        ex.cost = {"strong": 0.01, "weak": 0.001, **({"mid": 0.003} if three else {})}
    return out


def write_synthetic(path: Path, **kw: object) -> Path:
    write_jsonl(path, synthetic(**kw))  # type: ignore[arg-type]
    return path
