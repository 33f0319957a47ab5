"""Router training/evaluation data: JSONL, one prompt per line.

    {"id": "mmlu/anatomy/12", "prompt": "...", "scores": {"model-a": 1.0, "model-b": 0.0},
     "cost": {"model-a": 0.003, "model-b": 0.0002}, "source": "mmlu/anatomy"}

`scores` are qualities (higher is better, any numeric scale); `cost` (USD per prompt) and `source`
(a group name, used for held-out-group cross-validation) are optional. Errors name the line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson


class DataError(ValueError):
    """Bad routing data; the message names the file and line."""


@dataclass(slots=True)
class Example:
    id: str
    prompt: str
    scores: dict[str, float]
    cost: dict[str, float] = field(default_factory=dict)
    source: str | None = None


def parse_example(obj: object, where: str) -> Example:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object with 'prompt' and 'scores'")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise DataError(f"{where}: 'prompt' must be a non-empty string")
    scores = obj.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise DataError(f"{where}: 'scores' must be an object of model name → number")
    clean: dict[str, float] = {}
    for model, q in scores.items():
        if isinstance(q, bool):
            q = float(q)
        if not isinstance(q, int | float) or not math.isfinite(q):
            raise DataError(f"{where}: scores.{model} must be a finite number, got {q!r}")
        clean[str(model)] = float(q)
    cost = obj.get("cost") or {}
    if not isinstance(cost, dict) or any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0
                                         for v in cost.values()):
        raise DataError(f"{where}: 'cost' must be an object of model name → USD (a number ≥ 0)")
    rid = obj.get("id")
    source = obj.get("source")
    return Example(id=str(rid) if rid is not None else where, prompt=prompt, scores=clean,
                   cost={str(k): float(v) for k, v in cost.items()},
                   source=str(source) if source is not None else None)


def load_jsonl(path: str | Path) -> list[Example]:
    """Read a routing data file; DataError names the line of the first problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read: {e.strerror}") from None
    out: list[Example] = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise DataError(f"{p}:{n}: not valid JSON ({e})") from None
        ex = parse_example(obj, f"{p}:{n}")
        if ex.id == f"{p}:{n}":
            ex.id = str(n)
        out.append(ex)
    if not out:
        raise DataError(f"{p}: no examples")
    return out


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> int:
    n = 0
    with open(path, "wb") as f:
        for ex in examples:
            obj: dict[str, object] = {"id": ex.id, "prompt": ex.prompt, "scores": ex.scores}
            if ex.cost:
                obj["cost"] = ex.cost
            if ex.source is not None:
                obj["source"] = ex.source
            f.write(orjson.dumps(obj) + b"\n")
            n += 1
    return n


def models_of(examples: Sequence[Example]) -> list[str]:
    """Models scored on every example, in first-seen order."""
    common: list[str] = list(examples[0].scores)
    for ex in examples[1:]:
        common = [m for m in common if m in ex.scores]
    return common


def require_models(examples: Sequence[Example], models: Sequence[str], where: str) -> None:
    """DataError unless every example has a score for every model (names the first gap)."""
    for ex in examples:
        for m in models:
            if m not in ex.scores:
                known = ", ".join(sorted(ex.scores))
                raise DataError(f"{where}: example {ex.id} has no score for '{m}' (it has: {known})")
