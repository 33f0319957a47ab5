"""Request analysis: everything the router wants to know about a request, computed once, cheaply.

`analyze(req)` reads the prompt and the routing hints and returns `Features`: a token estimate
(tokens.py; exact tiktoken counts when a counter is passed), the expected output, the task type
(classify.py), a complexity score, the capabilities the request needs, and the caller's metadata
(user, tier, tags, task value, latency budget, max cost). Hints come from `req.metadata`, which holds
both OpenAI `metadata` and `extra_body={"modelyard": {...}}`; a malformed hint is a 400 naming it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import BadRequest
from ..tokens import count_message_tokens, count_tools_tokens
from ..types import ChatRequest, Message
from .classify import (
    WINDOW_CHARS,
    TaskModel,
    default_model,
    find_marks,
    language,
    mark_categories,
    scan,
    window,
)
from .features import TASKS, Features

# Typical reply length per task (tokens) when the request sets no max_tokens: for cost and latency
# estimates only. Scaled up to 2x by complexity.
OUTPUT_PRIOR: dict[str, int] = {
    "code_generation": 450, "code_review": 350, "math": 250, "reasoning": 400, "summarization": 200,
    "translation": 0, "extraction": 120, "classification": 8, "creative_writing": 500, "simple_qa": 40,
    "chat": 80,
}
# How hard a task is before looking at the prompt: the base of the complexity score.
TASK_PRIOR: dict[str, float] = {
    "code_generation": 0.55, "code_review": 0.55, "math": 0.6, "reasoning": 0.6, "summarization": 0.3,
    "translation": 0.25, "extraction": 0.3, "classification": 0.15, "creative_writing": 0.35,
    "simple_qa": 0.05, "chat": 0.05,
}
_TIERS_VALUE = {"low": 0.0, "medium": 0.5, "med": 0.5, "normal": 0.5, "high": 1.0, "critical": 1.0}
# metadata keys understood (aliases map to the same feature); others go to Features.extra
_META_KEYS = {"user", "user_id", "tier", "user_tier", "tags", "task_value", "value", "latency_budget_ms",
              "max_latency_ms", "max_cost_usd", "max_cost", "min_quality", "optimize_for", "team", "key",
              "task"}
OPTIMIZE_FOR = ("cost", "latency", "quality", "balanced")

MessageCounter = Callable[[Iterable[Message]], int]


def last_user_text(req: ChatRequest) -> str:
    """The turn that says what is wanted now (the whole prompt when there is no user turn)."""
    for m in reversed(req.messages):
        if m.role == "user":
            return m.text()
    return req.prompt_text()


def complexity(text: str, task: str, input_tokens: int, marks: set[str] | None = None) -> float:
    """0..1 for the (windowed) last user turn: a task prior, raised by length, reasoning cues,
    multi-step structure, code and constraints (`classify.COMPLEXITY_MARKS`).

    Each term saturates, so no single signal (a long pasted document, say) makes a prompt "hard".
    `marks` are what `featurize_words` found (searched here when not given).
    """
    prior = _PRIOR_TERM.get(task)
    score = (0.35 * TASK_PRIOR.get(task, 0.3) if prior is None else prior) + \
        (_length_term(input_tokens) if input_tokens >= _LENGTH_TABLE else _LENGTH_TERM[input_tokens])
    found = find_marks(text) if marks is None else marks
    questions = text.count("?")
    if not found and questions < 2:  # most prompts: no cue, at most one question (the same sum)
        x = score / 0.75
        if 0.0 <= x <= 1.0:
            return round3(x)
    else:
        cats = mark_categories(found)
        reasoning = min(1.0, cats.count("x:reason") / 3.0)
        steps = min(1.0, (cats.count("x:step") + ("k:list" in cats) + max(0, questions - 1)) / 4.0)
        code = 1.0 if "k:codeblock" in cats else 0.5 if "k:code" in cats else 0.0
        constraints = min(1.0, cats.count("x:constraint") / 4.0)
        score += 0.2 * reasoning  # term by term: the same sum, in the same order, as one expression
        score += 0.1 * steps
        score += 0.05 * code
        score += 0.1 * constraints
    return round3(min(1.0, max(0.0, score / 0.75)))  # /0.75: the realistic maximum maps to ~1


def _length_term(input_tokens: int) -> float:
    """The length term of the complexity score: 0.2 × log10(1 + tokens) / 4, at most 0.2."""
    return 0.2 * min(1.0, math.log10(1 + input_tokens) / 4.0)  # 10 tok → .26, 1k → .75, 10k → 1


_LENGTH_TABLE = 4096  # `_length_term` of up to this many tokens precomputed (the same doubles)
_LENGTH_TERM = tuple(map(_length_term, range(_LENGTH_TABLE)))
_PRIOR_TERM = {task: 0.35 * p for task, p in TASK_PRIOR.items()}


def round3(x: float) -> float:
    """`round(x, 3)` for x in [0, 1], without its decimal conversion when x·1000 is not close to a
    half: then the nearest integer k is unambiguous and k / 1000 is the double `round` returns."""
    y = x * 1000.0
    k = round(y)
    return k / 1000.0 if abs(y - k) < 0.4999 else round(x, 3)


# Hints that only make sense with a task and an output estimate: they force the full analysis.
TASK_HINTS = frozenset(("task", "min_quality", "max_cost_usd", "max_cost", "latency_budget_ms", "max_latency_ms",
                        "optimize_for"))
LIGHT_OUTPUT = 256  # expected output when the task is not classified (light analysis)
# The features only the full analysis works out (the light one leaves defaults or a flat estimate):
# a strategy or rule that reads none of them lets its group skip the classifier.
TASK_FEATURES = frozenset(("task", "task_confidence", "complexity", "language", "output_tokens", "context_tokens"))


def analyze(req: ChatRequest, *, model: TaskModel | None = None, counter: MessageCounter | None = None,
            now: float | None = None, light: bool = False) -> Features:
    """Features of one request. `counter` replaces the token estimate (exact tiktoken counts).
    `light`: skip the classifier, complexity and language (unless a hint needs them) — for groups
    whose strategy and filters only read tokens, capabilities and hints."""
    meta = req.metadata
    input_tokens = (counter or count_message_tokens)(req.messages)
    if req.tools:
        input_tokens += count_tools_tokens(req.tools)
    if light and not (meta and not TASK_HINTS.isdisjoint(meta)):
        return _light(req, input_tokens, now)
    last = req.messages[-1] if req.messages else None
    text = last.content if last is not None and last.role == "user" and last.content.__class__ is str else \
        last_user_text(req)  # (the last turn a user's text, the common case, read here)
    win = text if len(text) <= WINDOW_CHARS else window(text)
    forced = meta.get("task") if meta else None
    if forced is not None:
        if forced not in TASKS:
            raise BadRequest(f"modelyard.task: unknown task {forced!r}; one of: {', '.join(TASKS)}",
                             param="modelyard.task")
        task, confidence = forced, 1.0
        words, _, marks = scan(win)
        lang = language(win, words)
    else:
        task, confidence, words, marks, lang = (model or default_model()).analyze_window(win)
    cx = complexity(win, task, input_tokens, marks)
    prior = OUTPUT_PRIOR.get(task, 100) or max(16, count_text_share(text, input_tokens))
    expected = int(prior * (1.0 + cx))
    output_tokens = min(req.max_tokens, expected) if req.max_tokens else expected
    hour, weekday = hour_weekday(now)
    f = Features(task, confidence, cx, input_tokens, output_tokens, input_tokens + (req.max_tokens or output_tokens),
                 request_capabilities(req), lang, req.user, hour=hour, weekday=weekday)
    if meta:
        _apply_metadata(f, meta)
    return f


_MINUTE = (-1.0, 0, 0)  # the wall-clock minute converted last: (minute, local hour, weekday)


def hour_weekday(now: float | None = None) -> tuple[int, int]:
    """Local hour and weekday of `now` (default: the current time), converted once per minute
    (time zones and DST shift by whole minutes)."""
    global _MINUTE
    if now is None:
        now = time.time()
    minute = now // 60
    cached = _MINUTE
    if minute != cached[0]:
        t = time.localtime(now)
        cached = _MINUTE = (minute, t.tm_hour, t.tm_wday)
    return cached[1], cached[2]


_NO_CAPS: frozenset[str] = frozenset()


def request_capabilities(req: ChatRequest) -> frozenset[str]:
    """What the request needs of a deployment: images → vision, tools → tools, JSON modes → json."""
    rf = req.response_format
    image = False
    for m in req.messages:
        if m.content.__class__ is not str and m.has_image():
            image = True
            break
    if not req.tools and not rf and not image:
        return _NO_CAPS
    json = rf is not None and rf.get("type") in ("json_object", "json_schema")
    return _CAPS[bool(req.tools), json, image]


# (tools, json, vision) -> the set, made once: the filters look their outcome up by it
_CAPS = {(t, j, v): frozenset(c for c, on in (("tools", t), ("json", j), ("vision", v)) if on)
         for t in (False, True) for j in (False, True) for v in (False, True)}


def _light(req: ChatRequest, input_tokens: int, now: float | None) -> Features:
    output = min(req.max_tokens, LIGHT_OUTPUT) if req.max_tokens else LIGHT_OUTPUT
    hour, weekday = hour_weekday(now)
    f = Features(task="", input_tokens=input_tokens, output_tokens=output,
                 context_tokens=input_tokens + (req.max_tokens or output), capabilities=request_capabilities(req),
                 user=req.user, hour=hour, weekday=weekday, analyzed=False)
    if req.metadata:
        _apply_metadata(f, req.metadata)
    return f


def count_text_share(text: str, input_tokens: int) -> int:
    """Translation output ≈ the text to translate: the last user turn's share of the prompt."""
    return min(input_tokens, len(text) // 4 + 1)


def _apply_metadata(f: Features, meta: dict[str, Any]) -> None:
    f.user = _str(meta, "user", f.user) or _str(meta, "user_id", f.user)
    f.tier = _str(meta, "tier") or _str(meta, "user_tier")
    f.team = _str(meta, "team")
    f.key = _str(meta, "key")
    tags = meta.get("tags")
    if tags is not None:
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise BadRequest("modelyard.tags: must be a list of strings or a comma-separated string",
                             param="modelyard.tags")
        f.tags = frozenset(tags)
    value = meta.get("task_value", meta.get("value"))
    if value is not None:
        f.task_value = _task_value(value)
    f.latency_budget_ms = _num(meta, "latency_budget_ms") or _num(meta, "max_latency_ms")
    f.max_cost_usd = _num(meta, "max_cost_usd") or _num(meta, "max_cost")
    q = _num(meta, "min_quality")
    if q is not None and not 0 <= q <= 1:
        raise BadRequest("modelyard.min_quality: must be between 0 and 1", param="modelyard.min_quality")
    f.min_quality = q
    opt = meta.get("optimize_for")
    if opt is not None:
        if opt not in OPTIMIZE_FOR:
            raise BadRequest(f"modelyard.optimize_for: must be one of {', '.join(OPTIMIZE_FOR)}, got {opt!r}",
                             param="modelyard.optimize_for")
        f.optimize_for = opt
    extra = {k: v for k, v in meta.items() if k not in _META_KEYS}
    if extra:
        f.extra = extra


def _str(meta: dict[str, Any], key: str, default: str | None = None) -> str | None:
    v = meta.get(key)
    if v is None:
        return default
    if not isinstance(v, str | int):
        raise BadRequest(f"modelyard.{key}: must be a string", param=f"modelyard.{key}")
    return str(v)


def _num(meta: dict[str, Any], key: str) -> float | None:
    """A positive number; OpenAI `metadata` values are strings, so "2500" is accepted too."""
    v = meta.get(key)
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        x = -1.0
    if isinstance(v, bool) or not x >= 0 or math.isinf(x):
        raise BadRequest(f"modelyard.{key}: must be a non-negative number, got {v!r}", param=f"modelyard.{key}")
    return x


def _task_value(v: Any) -> str:
    """low | medium | high; numbers in [0, 1] are bucketed."""
    if isinstance(v, str) and v.lower() in _TIERS_VALUE:
        return {0.0: "low", 0.5: "medium", 1.0: "high"}[_TIERS_VALUE[v.lower()]]
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise BadRequest(f"modelyard.task_value: must be low, medium, high or a number in [0, 1], got {v!r}",
                         param="modelyard.task_value") from None
    return "low" if x < 0.34 else "medium" if x < 0.67 else "high"
