"""Pipeline prompt templates: `{{ name }}` and `{{ name.field.0 }}`, nothing else.

Compiled once at config load into literal and reference parts, so a typo (`{{ qeries }}`, an
unclosed `{{`) is a config error naming the field, and rendering a request is a join.
No logic, loops or filters: a step that needs them is a step for a model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


class TemplateError(ValueError):
    pass


@dataclass(slots=True, frozen=True)
class Ref:
    """A reference to a value: a root name (an input or a step) and a path into its output."""

    root: str
    path: tuple[str | int, ...] = ()

    @property
    def text(self) -> str:
        return ".".join((self.root, *(str(p) for p in self.path)))


def parse_ref(expr: str) -> Ref:
    """`queries.items.0` -> Ref("queries", ("items", 0)); raise TemplateError if malformed."""
    expr = expr.strip()
    if not expr:
        raise TemplateError("empty reference: write a name, e.g. {{ input }}")
    root, *rest = expr.split(".")
    if not _NAME.match(root):
        raise TemplateError(f"'{expr}' is not a reference: use a name, optionally with .field or .0 parts")
    path: list[str | int] = []
    for p in rest:
        if not _KEY.match(p):
            raise TemplateError(f"'{expr}' is not a reference: each part after a dot is a field name or index")
        path.append(int(p) if p.isdigit() else p)
    return Ref(root, tuple(path))


@dataclass(slots=True, frozen=True)
class Template:
    source: str
    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(p for p in self.parts if isinstance(p, Ref))

    def render(self, resolve: Callable[[Ref], Any]) -> str:
        return "".join(p if isinstance(p, str) else as_text(resolve(p)) for p in self.parts)


def compile_template(source: str) -> Template:
    parts: list[str | Ref] = []
    pos = 0
    for m in _TAG.finditer(source):
        literal = source[pos:m.start()]
        if "{{" in m.group(1):
            raise TemplateError("unclosed '{{' in '{{" + m.group(1) + "}}'")
        if literal:
            parts.append(literal)
        parts.append(parse_ref(m.group(1)))
        pos = m.end()
    tail = source[pos:]
    if "{{" in tail:
        raise TemplateError("unclosed '{{': close it with '}}'")
    if tail:
        parts.append(tail)
    return Template(source, tuple(parts))


def as_text(value: Any) -> str:
    """How a value reads inside a prompt: text as-is, a list of scalars as bullet lines, else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return "\n".join(f"- {v}" for v in value)
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
