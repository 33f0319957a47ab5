"""Vote normalisers: turn each model's reply into the answer it stands for, so "Spam.", "spam" and
"**SPAM**" count as one vote. A normaliser returns None when the reply holds no answer of its kind
(no number, no known label): that vote counts as cast but agrees with nobody.

- exact:  the reply, stripped
- fold:   case-folded, whitespace collapsed, surrounding punctuation and markdown removed
- label:  the first of the configured `labels` the reply mentions (longest wins at one position);
          without labels, the word after "label:"/"answer:" or else the first word
- number: the number given as the answer ("answer is 84", "**84**", "= 84"), else the last number
- choice: a multiple-choice letter A-H ("The answer is B", "B. Paris", "(b)")
- json:   a field of the JSON document in the reply (`field: label` or `field: result.score`)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from .parse import ParseError, extract_json, split_path, walk
from .spec import Spec

Normalizer = Callable[[str], str | None]

_EDGE = " \t\r\n.,;:!?\"'`*_()[]{}<>"


def fold(text: str) -> str | None:
    out = " ".join(text.casefold().split()).strip(_EDGE)
    return out or None


def exact(text: str) -> str | None:
    return text.strip() or None


def _label(labels: tuple[str, ...]) -> Normalizer:
    if not labels:
        lead = re.compile(r"(?i)\b(?:label|answer|category|class)\s*(?:is)?\s*[:=]?\s*\**\s*([\w-]+)")
        first = re.compile(r"[\w-]+")

        def bare(text: str) -> str | None:
            m = lead.search(text) or first.search(text)
            return m.group(1 if m.re is lead else 0).casefold() if m else None
        return bare
    canon = {lab.casefold(): lab for lab in labels}
    # longest first: at one position "not spam" beats "spam"
    alts = "|".join(re.escape(k) for k in sorted(canon, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])({alts})(?![\w-])", re.I)

    def labelled(text: str) -> str | None:
        m = pattern.search(text)
        return canon[m.group(1).casefold()] if m else None
    return labelled


_NUM = r"[-−]?\d[\d,]*(?:\.\d+)?"
_NUMBER_CUES = (
    re.compile(rf"(?i)\banswer\s*(?:is|:|=)?\s*\**\s*\$?({_NUM})"),
    re.compile(rf"\*\*\s*\$?({_NUM})\s*\*\*"),
    re.compile(rf"=\s*\$?({_NUM})"),
)
_ANY_NUMBER = re.compile(rf"(?<![\w.])({_NUM})")


def canonical_number(raw: str) -> str | None:
    try:
        v = float(raw.replace(",", "").replace("−", "-"))
    except ValueError:
        return None
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.10g}"


def number(text: str) -> str | None:
    for cue in _NUMBER_CUES:
        found = cue.findall(text)
        if found:
            return canonical_number(found[-1])
    found = _ANY_NUMBER.findall(text)
    return canonical_number(found[-1]) if found else None


_CHOICE_CUES = (
    re.compile(r"(?i:\banswer\s*(?:is|:)?\s*(?:option\s*)?)\**\(?([A-Ha-h])\b"),
    re.compile(r"^\s*\**\(?([A-H])\)?(?:[.):\s]|\Z)"),
    re.compile(r"\(([A-Ha-h])\)"),
    re.compile(r"\b([A-H])[.)](?:\s|\Z)"),
)


def choice(text: str) -> str | None:
    for cue in _CHOICE_CUES:
        m = cue.search(text)
        if m:
            return m.group(1).upper()
    return None


def _json_field(field: str) -> Normalizer:
    path = split_path(field)

    def pick(text: str) -> str | None:
        try:
            value: Any = walk(extract_json(text), path)
        except (ParseError, KeyError):
            return None
        if isinstance(value, str):
            return fold(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return canonical_number(str(value))
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return pick


def normalizer(spec: Spec) -> Normalizer:
    kind = spec.normalize
    if kind == "exact":
        return exact
    if kind == "label":
        return _label(spec.labels)
    if kind == "number":
        return number
    if kind == "choice":
        return choice
    if kind == "json":
        assert spec.field is not None
        return _json_field(spec.field)
    return fold
