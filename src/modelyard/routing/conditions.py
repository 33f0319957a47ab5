"""Rule conditions: YAML mappings over request features, compiled once into closures.

    when:
      task: [code_generation, code_review]     # a list: any of (for sets: contains all)
      complexity: {gte: 0.6}                   # operators: eq ne in not_in lt lte gt gte between
      capabilities: vision                     # a set field with a scalar: contains it
      tags: {contains_any: [batch, offline]}   # contains / contains_any / contains_all
      hour: {between: [22, 6]}                 # lo <= x < hi, wrapping past midnight when lo > hi
      metadata.project: apollo                 # any other request metadata key
      any: [{tier: enterprise}, {task_value: high}]   # combinators: any, all, not

Every key of a `when` mapping must hold (AND). Unknown features, operators or values are
`StrategyConfigError`s pointing at the exact key, reported as `file: model_groups.<g>.options...`.

Each predicate also carries its Python expression over `f` (`source`), constants by name: `rules`
compiles a group's rules into one function from them, so a decision evaluates its rules without a
call per condition node. Predicates without an expression (metadata keys, regexes, numbers that may
be missing or text) appear in it as calls.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from ..catalog import CAPABILITIES
from .features import TASKS, Features
from .strategies.base import StrategyConfigError

Condition = Callable[[Features], bool]
Loc = tuple[str | int, ...]

_NUMBER = ("task_confidence", "complexity", "input_tokens", "output_tokens", "context_tokens",
           "latency_budget_ms", "max_cost_usd", "min_quality", "hour", "weekday")
_OPTIONAL_NUMBER = frozenset(("latency_budget_ms", "max_cost_usd", "min_quality"))  # None when not given
_STRING = ("language", "user", "tier", "team", "key")
_ENUMS: dict[str, tuple[str, ...]] = {
    "task": TASKS,
    "task_value": ("low", "medium", "high"),
    "optimize_for": ("cost", "latency", "quality", "balanced"),
}
_SETS: dict[str, tuple[str, ...] | None] = {"capabilities": tuple(sorted(CAPABILITIES - {"streaming"})),
                                             "tags": None}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FIELDS = (*_NUMBER, *_STRING, *_ENUMS, *_SETS)
_SCALAR_OPS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "exists", "matches")
_SET_OPS = ("contains", "contains_any", "contains_all", "exists")


def compile_condition(when: Any, loc: Loc) -> Condition:
    """A `when` mapping → a predicate on Features. An empty mapping always matches."""
    if not isinstance(when, dict):
        raise StrategyConfigError(loc, "must be a mapping of feature: condition (e.g. {task: math})")
    parts = [_compile_key(k, v, (*loc, k)) for k, v in when.items()]
    if not parts:
        return _expr(lambda f: True, "True")
    return _all(parts)


def first_true(conditions: list[Condition]) -> Callable[[Features], int]:
    """One function: the index of the first condition that holds for `f`, -1 when none does —
    generated from the conditions' expressions, what calling them in turn gives."""
    lines, names = ["def first(f):"], {}
    for i, cond in enumerate(conditions):
        text, consts = source(cond)
        names.update(consts)
        lines += [f"    if {text}:", f"        return {i}"]
    lines.append("    return -1")
    exec("\n".join(lines), names)  # (the text holds only Features attribute names and _k<n> constants)
    return names["first"]  # type: ignore[no-any-return]


def _all(parts: list[Condition]) -> Condition:
    """The conjunction, as nested closures (no generator per evaluation)."""
    if len(parts) == 1:
        return parts[0]
    a, b = parts[0], _all(parts[1:])
    return _joined(lambda f: a(f) and b(f), " and ", parts)


def _any(parts: list[Condition]) -> Condition:
    """The disjunction, as nested closures."""
    if len(parts) == 1:
        return parts[0]
    a, b = parts[0], _any(parts[1:])
    return _joined(lambda f: a(f) or b(f), " or ", parts)


_NAMES = itertools.count()  # constant names of generated expressions: unique per process


def _expr(cond: Condition, text: str, *consts: Any) -> Condition:
    """Attach to `cond` its expression: `text` with {0}, {1}... naming `consts`."""
    names = [f"_k{next(_NAMES)}" for _ in consts]
    cond.source = (f"({text.format(*names)})", dict(zip(names, consts, strict=True)))  # type: ignore[attr-defined]
    return cond


def source(cond: Condition) -> tuple[str, dict[str, Any]]:
    """(a Python expression over `f` equal to `cond(f)`, the names it uses): `cond`'s own, or a call."""
    src = getattr(cond, "source", None)
    if src is not None:
        return src  # type: ignore[no-any-return]
    name = f"_k{next(_NAMES)}"
    return f"{name}(f)", {name: cond}


def _joined(cond: Condition, op: str, parts: list[Condition]) -> Condition:
    texts, consts = [], {}
    for p in parts:
        text, names = source(p)
        texts.append(text)
        consts.update(names)
    cond.source = (f"({op.join(texts)})", consts)  # type: ignore[attr-defined]
    return cond


def _compile_key(key: str, value: Any, loc: Loc) -> Condition:
    if key in ("any", "all"):
        if not isinstance(value, list) or not value:
            raise StrategyConfigError(loc, f"'{key}' takes a non-empty list of conditions")
        subs = [compile_condition(v, (*loc, i)) for i, v in enumerate(value)]
        return _any(subs) if key == "any" else _all(subs)
    if key == "not":
        sub = compile_condition(value, loc)
        text, names = source(sub)
        neg = lambda f: not sub(f)  # noqa: E731
        neg.source = (f"(not {text})", names)  # type: ignore[attr-defined]
        return neg
    if key.startswith("metadata."):
        name = key[len("metadata."):]
        if not name:
            raise StrategyConfigError(loc, "name the metadata key: metadata.<key>")
        return _scalar(lambda f: f.extra.get(name), value, loc, kind="any")
    if key in _SETS:
        return _set(attrgetter(key), value, loc, _SETS[key], attr=key)
    if key in _NUMBER:
        get = attrgetter(key)
        if key == "weekday":
            value = _weekdays(value, loc)
        sure = key not in _OPTIONAL_NUMBER
        return _scalar(get, value, loc, kind="number", sure=sure, attr=key if sure else None)
    if key in _STRING:
        return _scalar(attrgetter(key), value, loc, kind="string", attr=key)
    if key in _ENUMS:
        return _scalar(attrgetter(key), value, loc, kind="enum", choices=_ENUMS[key], attr=key)
    import difflib

    close = difflib.get_close_matches(key, [*FIELDS, "any", "all", "not"], n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise StrategyConfigError(loc, f"unknown feature '{key}'{hint}; features: {', '.join(FIELDS)}, "
                                   "metadata.<key>; combinators: any, all, not")


def _check_value(v: Any, loc: Loc, kind: str, choices: tuple[str, ...] | None) -> Any:
    if kind == "number":
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise StrategyConfigError(loc, f"must be a number, got {v!r}")
    elif kind in ("string", "enum"):
        if not isinstance(v, str):
            raise StrategyConfigError(loc, f"must be a string, got {v!r}")
        if choices is not None and v not in choices:
            raise StrategyConfigError(loc, f"unknown value {v!r}; one of: {', '.join(choices)}")
    return v


def _scalar(get: Callable[[Features], Any], value: Any, loc: Loc, *, kind: str,
            choices: tuple[str, ...] | None = None, sure: bool = False, attr: str | None = None) -> Condition:
    """`sure`: the field always holds a number (compared as it is, no conversion). `attr`: the
    Features attribute `get` reads, for the predicates' expressions (None: no expression)."""
    if isinstance(value, list):
        value = {"in": value}
    if not isinstance(value, dict):
        v = _check_value(value, loc, kind, choices)
        return _src(lambda f: get(f) == v, attr, "f.{a} == {0}", v)
    preds: list[Condition] = []
    for op, arg in value.items():
        where = (*loc, op)
        if op not in _SCALAR_OPS:
            raise StrategyConfigError(where, f"unknown operator '{op}'; one of: {', '.join(_SCALAR_OPS)}")
        preds.append(_scalar_op(get, op, arg, where, kind, choices, sure, attr))
    return _all(preds)


def _src(cond: Condition, attr: str | None, text: str, *consts: Any) -> Condition:
    """`_expr` for a predicate on attribute `attr` (`{a}` in `text`); nothing when there is none."""
    return _expr(cond, text.replace("{a}", attr), *consts) if attr is not None else cond


def _scalar_op(get: Callable[[Features], Any], op: str, arg: Any, loc: Loc, kind: str,
               choices: tuple[str, ...] | None, sure: bool = False, attr: str | None = None) -> Condition:
    if op == "exists":
        if not isinstance(arg, bool):
            raise StrategyConfigError(loc, "takes true or false")
        if arg:
            return _src(lambda f: get(f) is not None, attr, "f.{a} is not None")
        return _src(lambda f: get(f) is None, attr, "f.{a} is None")
    if op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg:
            raise StrategyConfigError(loc, "takes a non-empty list")
        vals = frozenset(_check_value(a, (*loc, i), kind, choices) for i, a in enumerate(arg))
        if op == "in":
            return _src(lambda f: get(f) in vals, attr, "f.{a} in {0}", vals)
        return _src(lambda f: get(f) not in vals, attr, "f.{a} not in {0}", vals)
    if op == "matches":
        if not isinstance(arg, str):
            raise StrategyConfigError(loc, "takes a regular expression string")
        try:
            rx = re.compile(arg)
        except re.error as e:
            raise StrategyConfigError(loc, f"invalid regular expression: {e}") from None
        return lambda f: isinstance(v := get(f), str) and rx.search(v) is not None
    if op == "between":
        if kind != "number" and kind != "any":
            raise StrategyConfigError(loc, "'between' compares numbers")
        if not isinstance(arg, list) or len(arg) != 2:
            raise StrategyConfigError(loc, "takes [low, high] (low inclusive, high exclusive)")
        lo, hi = (_check_value(a, (*loc, i), "number", None) for i, a in enumerate(arg))
        if sure:
            if lo <= hi:
                return _src(lambda f: lo <= get(f) < hi, attr, "{0} <= f.{a} < {1}", lo, hi)
            return _src(lambda f: (v := get(f)) >= lo or v < hi, attr, "f.{a} >= {0} or f.{a} < {1}", lo, hi)
        if lo <= hi:
            return lambda f: (v := _as_float(get(f))) is not None and lo <= v < hi
        return lambda f: (v := _as_float(get(f))) is not None and (v >= lo or v < hi)  # wraps: hours 22 → 6
    v = _check_value(arg, loc, kind if op in ("eq", "ne") else "number", choices if op in ("eq", "ne") else None)
    if op == "eq":
        return _src(lambda f: get(f) == v, attr, "f.{a} == {0}", v)
    if op == "ne":
        return _src(lambda f: get(f) != v, attr, "f.{a} != {0}", v)
    fv = float(v)
    if sure:
        compare = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}[op]
        symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return _src(lambda f: compare(get(f), fv), attr, "f.{a} " + symbol + " {0}", fv)
    cmp = {"lt": float.__lt__, "lte": float.__le__, "gt": float.__gt__, "gte": float.__ge__}[op]
    return lambda f: (x := _as_float(get(f))) is not None and cmp(x, fv)


def _as_float(x: Any) -> float | None:
    """Numbers as floats; numeric strings too (OpenAI `metadata` values are strings)."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, int | float):
        return float(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _set(get: Callable[[Features], frozenset[str]], value: Any, loc: Loc,
         choices: tuple[str, ...] | None, attr: str) -> Condition:
    def names(arg: Any, where: Loc) -> frozenset[str]:
        items = arg if isinstance(arg, list) else [arg]
        if not items:
            raise StrategyConfigError(where, "takes a value or a non-empty list")
        for i, a in enumerate(items):
            _check_value(a, (*where, i) if isinstance(arg, list) else where, "enum" if choices else "string",
                         choices)
        return frozenset(items)

    if not isinstance(value, dict):
        need = names(value, loc)
        return _src(lambda f: need <= get(f), attr, "{0} <= f.{a}", need)
    preds: list[Condition] = []
    for op, arg in value.items():
        where = (*loc, op)
        if op not in _SET_OPS:
            raise StrategyConfigError(where, f"unknown operator '{op}' for a set; one of: {', '.join(_SET_OPS)}")
        if op == "exists":
            if not isinstance(arg, bool):
                raise StrategyConfigError(where, "takes true or false")
            preds.append(_src(lambda f: bool(get(f)), attr, "bool(f.{a})") if arg else
                         _src(lambda f: not get(f), attr, "not f.{a}"))
            continue
        vals = names(arg, where)
        if op == "contains_any":
            preds.append(_src(lambda f, vals=vals: not vals.isdisjoint(get(f)), attr, "not {0}.isdisjoint(f.{a})",
                              vals))
        else:
            preds.append(_src(lambda f, vals=vals: vals <= get(f), attr, "{0} <= f.{a}", vals))
    return preds[0] if len(preds) == 1 else _joined(lambda f: all(p(f) for p in preds), " and ", preds)


def _weekdays(value: Any, loc: Loc) -> Any:
    """Accept mon..sun as well as 0..6 for `weekday`."""
    def one(v: Any) -> Any:
        if isinstance(v, str):
            if v.lower()[:3] not in _WEEKDAYS:
                raise StrategyConfigError(loc, f"unknown weekday {v!r}; use mon..sun or 0..6")
            return _WEEKDAYS.index(v.lower()[:3])
        return v
    if isinstance(value, list):
        return [one(v) for v in value]
    if isinstance(value, dict):
        return {k: [one(x) for x in v] if isinstance(v, list) else one(v) for k, v in value.items()}
    return one(value)
