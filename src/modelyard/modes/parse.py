"""Reading structure out of model text: JSON (bare, fenced, or embedded in prose) and regex captures.

Models wrap JSON in ```json fences, put a sentence before it, or add a trailing remark; callers
(pipeline parsers, the judge's verdict, vote's `json` normaliser) want the document either way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()
_MAX_STARTS = 64  # how many `{`/`[` positions to try in prose before giving up


class ParseError(ValueError):
    """The text does not hold what the parser expects; the message quotes a short excerpt."""


def excerpt(text: str, limit: int = 120) -> str:
    one_line = " ".join(text.split())
    return repr(one_line if len(one_line) <= limit else one_line[: limit - 1] + "…")


def extract_json(text: str) -> Any:
    """The first JSON object or array in `text`; raise ParseError if there is none."""
    s = text.strip()
    if s[:1] in ("{", "[", '"') or s[:1].isdigit():
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            pass
    for m in _FENCE.finditer(text):
        try:
            return orjson.loads(m.group(1).strip())
        except orjson.JSONDecodeError:
            continue
    tries = 0
    for m in re.finditer(r"[{\[]", text):
        tries += 1
        if tries > _MAX_STARTS:
            break
        try:
            doc, _ = _DECODER.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(doc, dict | list):
            return doc
    raise ParseError(f"no JSON found in {excerpt(text)}")


def walk(doc: Any, path: tuple[str | int, ...]) -> Any:
    """Follow a path of keys / list indexes; raise KeyError naming the first missing piece."""
    cur = doc
    for i, key in enumerate(path):
        if isinstance(cur, dict) and isinstance(key, str) and key in cur:
            cur = cur[key]
        elif isinstance(cur, dict) and isinstance(key, int) and str(key) in cur:
            cur = cur[str(key)]
        elif isinstance(cur, list) and isinstance(key, int) and -len(cur) <= key < len(cur):
            cur = cur[key]
        else:
            raise KeyError(".".join(str(k) for k in path[: i + 1]))
    return cur


def split_path(dotted: str) -> tuple[str | int, ...]:
    """`a.b.0` -> ("a", "b", 0)."""
    return tuple(int(p) if p.isdigit() else p for p in dotted.split(".") if p != "")


@dataclass(slots=True, frozen=True)
class OutputParser:
    """How a pipeline step's text becomes its output: text as-is, a JSON document, or a regex capture."""

    kind: str = "text"  # text | json | regex
    pattern: re.Pattern[str] | None = None

    @property
    def fields(self) -> frozenset[str] | None:
        """Names a template may use after the step's name (None: any, the output is JSON)."""
        if self.kind == "json":
            return None
        if self.kind == "regex" and self.pattern is not None and self.pattern.groupindex:
            return frozenset(self.pattern.groupindex)
        return frozenset()

    def parse(self, text: str) -> Any:
        if self.kind == "text":
            return text
        if self.kind == "json":
            return extract_json(text)
        assert self.pattern is not None
        m = self.pattern.search(text)
        if m is None:
            raise ParseError(f"pattern {self.pattern.pattern!r} does not match {excerpt(text)}")
        if self.pattern.groupindex:
            return {k: v for k, v in m.groupdict().items()}
        return m.group(1) if self.pattern.groups else m.group(0)
