"""Rule conditions: YAML mappings over request features, turned once (at config load) into closures.

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
"""

from __future__ import annotations

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
        return _always
    return _all(parts)


def fields_read(when: dict[str, Any]) -> frozenset[str]:
    """The Features fields a (compiled, so well-formed) `when` mapping reads; `metadata.<key>`
    conditions read `extra`. Lets a strategy say which analysis its rules need."""
    out: set[str] = set()
    for key, value in when.items():
        if key in ("any", "all"):
            for sub in value:
                out |= fields_read(sub)
        elif key == "not":
            out |= fields_read(value)
        else:
            out.add("extra" if key.startswith("metadata.") else key)
    return frozenset(out)


def _always(f: Features) -> bool:
    return True


def _all(parts: list[Condition]) -> Condition:
    """The conjunction, as nested closures (no generator per evaluation)."""
    if len(parts) == 1:
        return parts[0]
    a, b = parts[0], _all(parts[1:])
    return lambda f: a(f) and b(f)


def _any(parts: list[Condition]) -> Condition:
    """The disjunction, as nested closures."""
    if len(parts) == 1:
        return parts[0]
    a, b = parts[0], _any(parts[1:])
    return lambda f: a(f) or b(f)


def _compile_key(key: str, value: Any, loc: Loc) -> Condition:
    if key in ("any", "all"):
        if not isinstance(value, list) or not value:
            raise StrategyConfigError(loc, f"'{key}' takes a non-empty list of conditions")
        subs = [compile_condition(v, (*loc, i)) for i, v in enumerate(value)]
        return _any(subs) if key == "any" else _all(subs)
    if key == "not":
        sub = compile_condition(value, loc)
        return lambda f: not sub(f)
    if key.startswith("metadata."):
        name = key[len("metadata."):]
        if not name:
            raise StrategyConfigError(loc, "name the metadata key: metadata.<key>")
        return _scalar(lambda f: f.extra.get(name), value, loc, kind="any")
    if key in _SETS:
        return _set(attrgetter(key), value, loc, _SETS[key])
    if key in _NUMBER:
        get = attrgetter(key)
        if key == "weekday":
            value = _weekdays(value, loc)
        return _scalar(get, value, loc, kind="number", sure=key not in _OPTIONAL_NUMBER)
    if key in _STRING:
        return _scalar(attrgetter(key), value, loc, kind="string")
    if key in _ENUMS:
        return _scalar(attrgetter(key), value, loc, kind="enum", choices=_ENUMS[key])
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
            choices: tuple[str, ...] | None = None, sure: bool = False) -> Condition:
    """`sure`: the field always holds a number (compared as it is, no conversion)."""
    if isinstance(value, list):
        value = {"in": value}
    if not isinstance(value, dict):
        v = _check_value(value, loc, kind, choices)
        return lambda f: get(f) == v
    preds: list[Condition] = []
    for op, arg in value.items():
        where = (*loc, op)
        if op not in _SCALAR_OPS:
            raise StrategyConfigError(where, f"unknown operator '{op}'; one of: {', '.join(_SCALAR_OPS)}")
        preds.append(_scalar_op(get, op, arg, where, kind, choices, sure))
    return _all(preds)


def _scalar_op(get: Callable[[Features], Any], op: str, arg: Any, loc: Loc, kind: str,
               choices: tuple[str, ...] | None, sure: bool = False) -> Condition:
    if op == "exists":
        if not isinstance(arg, bool):
            raise StrategyConfigError(loc, "takes true or false")
        if arg:
            return lambda f: get(f) is not None
        return lambda f: get(f) is None
    if op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg:
            raise StrategyConfigError(loc, "takes a non-empty list")
        vals = frozenset(_check_value(a, (*loc, i), kind, choices) for i, a in enumerate(arg))
        if op == "in":
            return lambda f: get(f) in vals
        return lambda f: get(f) not in vals
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
                return lambda f: lo <= get(f) < hi
            return lambda f: (v := get(f)) >= lo or v < hi
        if lo <= hi:
            return lambda f: (v := _as_float(get(f))) is not None and lo <= v < hi
        return lambda f: (v := _as_float(get(f))) is not None and (v >= lo or v < hi)  # wraps: hours 22 → 6
    v = _check_value(arg, loc, kind if op in ("eq", "ne") else "number", choices if op in ("eq", "ne") else None)
    if op == "eq":
        return lambda f: get(f) == v
    if op == "ne":
        return lambda f: get(f) != v
    fv = float(v)
    compare: Callable[[Any, Any], bool] = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt,
                                           "gte": operator.ge}[op]
    if sure:
        return lambda f: compare(get(f), fv)
    return lambda f: (x := _as_float(get(f))) is not None and compare(x, fv)


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
         choices: tuple[str, ...] | None) -> Condition:
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
        return lambda f: need <= get(f)
    preds: list[Condition] = []
    for op, arg in value.items():
        where = (*loc, op)
        if op not in _SET_OPS:
            raise StrategyConfigError(where, f"unknown operator '{op}' for a set; one of: {', '.join(_SET_OPS)}")
        if op == "exists":
            if not isinstance(arg, bool):
                raise StrategyConfigError(where, "takes true or false")
            preds.append(_nonempty(get) if arg else _empty(get))
            continue
        vals = names(arg, where)
        preds.append(_overlaps(get, vals) if op == "contains_any" else _contains(get, vals))
    return _all(preds)


def _nonempty(get: Callable[[Features], frozenset[str]]) -> Condition:
    return lambda f: bool(get(f))


def _empty(get: Callable[[Features], frozenset[str]]) -> Condition:
    return lambda f: not get(f)


def _overlaps(get: Callable[[Features], frozenset[str]], vals: frozenset[str]) -> Condition:
    return lambda f: not vals.isdisjoint(get(f))


def _contains(get: Callable[[Features], frozenset[str]], vals: frozenset[str]) -> Condition:
    return lambda f: vals <= get(f)


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
