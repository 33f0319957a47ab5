"""What a multi-model request asks for: the mode and its options, read from `extra_body.modelyard`
(HTTP), keyword arguments (Python) or a pipeline step's `ensemble:` (config).

One parser for all three surfaces, so a bad option gets the same message everywhere; the caller
turns `SpecError` into a 400 (`modelyard.min_agreement: ...`) or a config error naming file:field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODES = ("race", "all", "vote", "judge", "fuse")
SINGLE_MODES = ("single", "hedge")  # served by the single-request path, not by modes/dispatch.py
NORMALIZERS = ("exact", "fold", "label", "number", "choice", "json")
MAX_CANDIDATES = 16

# metadata keys the modes consume; everything else (routing hints) is passed on to each sub-call
KEYS = frozenset(("mode", "models", "judge", "aggregator", "min_agreement", "normalize", "labels", "field",
                  "swap", "criteria", "budget_usd", "inputs"))


class SpecError(ValueError):
    """A bad option: `field` is the key inside the modelyard object (`min_agreement`, `models[2]`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(slots=True, frozen=True)
class Spec:
    mode: str
    models: tuple[str, ...] = ()  # candidates; empty: the deployments of the requested model group
    judge: str | None = None  # judge mode: who picks (default: the strongest candidate)
    aggregator: str | None = None  # fuse mode: who merges (default: the strongest candidate)
    min_agreement: int | None = None  # vote: votes the answer needs (default: a majority of candidates)
    normalize: str = "fold"  # vote: how answers are compared
    labels: tuple[str, ...] = ()  # vote, normalize=label: the labels to look for
    field: str | None = None  # vote, normalize=json: dotted path of the field that is the answer
    swap: bool = False  # judge: ask twice, the second time with the order reversed
    criteria: str | None = None  # judge: what "best" means, added to the judge's prompt
    budget_usd: float | None = None  # stop starting sub-calls once this much is spent

    def to_metadata(self) -> dict[str, Any]:
        """The same spec as a `modelyard` object (how a pipeline step hands it to the gateway)."""
        out: dict[str, Any] = {"mode": self.mode}
        if self.models:
            out["models"] = list(self.models)
        for key in ("judge", "aggregator", "min_agreement", "field", "criteria", "budget_usd"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.normalize != "fold":
            out["normalize"] = self.normalize
        if self.labels:
            out["labels"] = list(self.labels)
        if self.swap:
            out["swap"] = True
        return out


def _str(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise SpecError(key, "must be a non-empty string")
    return v


def _str_list(d: dict[str, Any], key: str, *, max_len: int) -> tuple[str, ...]:
    v = d.get(key)
    if v is None:
        return ()
    if isinstance(v, str):  # "a,b,c" is what a CLI or a query string hands over
        v = [s.strip() for s in v.split(",") if s.strip()]
    if not isinstance(v, list):
        raise SpecError(key, "must be an array of strings")
    if len(v) > max_len:
        raise SpecError(key, f"at most {max_len} entries, got {len(v)}")
    for i, s in enumerate(v):
        if not isinstance(s, str) or not s:
            raise SpecError(f"{key}[{i}]", "must be a non-empty string")
    return tuple(v)


def parse_spec(d: dict[str, Any]) -> Spec:
    """Validate the mode options in `d` (unknown keys are left alone: they are routing hints)."""
    mode = d.get("mode")
    if mode not in MODES:
        known = ", ".join((*SINGLE_MODES, *MODES))
        raise SpecError("mode", f"unknown mode {mode!r}; one of: {known} (or model 'pipeline/<name>')")
    models = _str_list(d, "models", max_len=MAX_CANDIDATES)
    min_agreement = d.get("min_agreement")
    if min_agreement is not None:
        if isinstance(min_agreement, bool) or not isinstance(min_agreement, int) or min_agreement < 1:
            raise SpecError("min_agreement", f"must be an integer >= 1, got {min_agreement!r}")
        if models and min_agreement > len(models):
            raise SpecError("min_agreement", f"{min_agreement} can never be reached with {len(models)} models")
    normalize = d.get("normalize", "fold")
    if normalize not in NORMALIZERS:
        raise SpecError("normalize", f"must be one of {', '.join(NORMALIZERS)}, got {normalize!r}")
    labels = _str_list(d, "labels", max_len=100)
    field = _str(d, "field")
    if normalize == "json" and not field:
        raise SpecError("field", "required with normalize 'json': the dotted path of the answer, e.g. 'label'")
    swap = d.get("swap", False)
    if not isinstance(swap, bool):
        raise SpecError("swap", "must be true or false")
    budget = d.get("budget_usd")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0):
        raise SpecError("budget_usd", f"must be a positive number of US dollars, got {budget!r}")
    return Spec(mode=mode, models=models, judge=_str(d, "judge"), aggregator=_str(d, "aggregator"),
                min_agreement=min_agreement, normalize=normalize, labels=labels, field=field, swap=swap,
                criteria=_str(d, "criteria"), budget_usd=float(budget) if budget is not None else None)
