"""The lexicon of the simulated fleet: stop words, keywords, the task and topic of a prompt,
safe arithmetic, and the places and facts it knows."""

from __future__ import annotations

import ast
import operator
import re
from typing import Any


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_WORD = re.compile(r"[a-z][a-z'\-]*[a-z]|[a-z]")
_CITIES = ("Paris", "Tokyo", "Lisbon", "Toronto", "Nairobi", "Oslo", "Melbourne", "Seoul", "Chicago", "Madrid")

# --- free text ---------------------------------------------------------------------------------------

_STOP = _wordset("""a an and are as at be been but by can could do does did for from has have how i i'd i'm if in
into is it it's its me my of on or our please should so some tell than that the their them then there these they
this to use using was we what when where which while who why will with would you your about explain describe give
write make show help need want like just also very really briefly simple terms short more most much many any each
other such only own same too can't don't let get got one two three four five few way ways during like looks
look looking turns turn seems seem follow following answer answers question curious kind sort thing things
something anything everything really actually basically maybe perhaps always never often sometimes usually
good better best bad worse worst new old big small large little long high low first last next several yes
know think feel say said go goes going went come comes take takes took see sees saw find found work works
does doing done being having hello thanks thank okay ok hey hi compare discuss outline summarize""")
_CAP_STOP = _wordset("""I The A An What Why How When Where Who Which Can Could Would Will Should Is Are Do Does Did
Please Use Tell Give Write Explain Describe Make Show List Summarize Translate Classify Extract Say Hi Hello Hey
Thanks Thank It In On At For From To And But Or If So My Your Our This That These Those Here There Also Then
Now Today Yes No Ok Okay Let Find Get Look Check""")


def _keywords(text: str) -> list[str]:
    """Content words of a text, most frequent first, in their written form ("PostgreSQL", "recursion")."""
    counts: dict[str, int] = {}
    forms: dict[str, str] = {}
    text = text[: 2 * _HEAD]
    for m in re.finditer(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]", text):
        word = m.group(0)
        low = word.lower()
        if low in _STOP or len(low) <= 2:
            continue
        counts[low] = counts.get(low, 0) + 1
        mixed = any(c.isupper() for c in word[1:])
        proper = word[0].isupper() and m.start() > 0 and not re.search(r"[.!?:]\s*$", text[: m.start()])
        if mixed or (proper and forms.get(low, word) == word):
            forms[low] = word
        else:
            forms[low] = low if not mixed else forms.get(low, word)
    ranked = sorted(counts, key=lambda w: (-counts[w], -len(w), w))[:8]
    return [forms[w] for w in ranked]


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: text.rfind(" ", 0, limit) if " " in text[:limit] else limit]


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


_TASK_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((task, re.compile(pat, re.I)) for task, pat in (
    ("code_review", r"\b(review|refactor|find the bug|what's wrong with)\b.*(code|function|snippet|\bpr\b)|```"),
    ("code_generation", r"\b(write|implement|create|generate)\b.{0,40}\b(function|class|script|program|code|"
                        r"method|sql query|regex)\b|\b(python|javascript|typescript|golang|rust|java|c\+\+)\b"),
    ("math", r"\d\s*[-+*/×÷^]\s*\d|\b(solve|calculate|compute|equation|integral|derivative|sum of)\b"),
    ("summarization", r"\b(summari[sz]e|summary|tl;?dr|condense)\b"),
    ("translation", r"\btranslat(e|ion)\b"),
    ("classification", r"\b(classify|categori[sz]e|sentiment|label)\b"),
    ("extraction", r"\bextract\b|\bpull out\b"),
    ("creative_writing", r"\b(poem|story|haiku|song|lyrics|limerick|fiction|slogan|joke)\b"),
    ("reasoning", r"\b(why|reason|step by step|prove|puzzle|logic|deduce|compare)\b"),
))


_HEAD = 1500  # intent is read from the start of a long prompt: keeps big pastes cheap


def _task_of(text: str) -> str:
    text = text[:_HEAD]
    for task, pattern in _TASK_RULES:
        if pattern.search(text):
            return task
    if _choices_in(text):
        return "simple_qa"
    return "simple_qa" if text.rstrip().endswith("?") and len(text) < 120 else "chat"


_LEAD_IN = re.compile(
    r"^\s*(?:(?:please|hey|hi|ok|okay|so|now|quick question)[,!:\s]+)*"
    r"(?:(?:can|could|would|will) you\s+(?:please\s+)?)?(?:please\s+)?"
    r"(?:(?:briefly|quickly|simply)\s+)?"
    r"(?:explain|describe|tell me(?: about)?|what(?:'s| is| are| was| were)|who(?:'s| is| was| are)|"
    r"define|give me an overview of|help me understand|teach me(?: about)?|talk about|discuss|compare|"
    r"what do you know about|write about|outline|give me|show me|generate|create|make|suggest|find)?\s*", re.I)
_HOW_DO_I = re.compile(r"^how (?:do|can|should|would) (?:i|we|you|one) ", re.I)
_ASIDES = re.compile(r",?\s*\b(?:in (?:simple|plain|layman'?s) terms|briefly|in short|quickly|for me)\b,?", re.I)
_CLAUSE_END = re.compile(r"[?.!;:\n]|,\s|\s(?:but|because|so that|and then|though)\s")


def _topic(text: str) -> str:
    """What the prompt is about, as a short phrase ("why the sky looks blue", "recursion")."""
    t = _ASIDES.sub("", " ".join(text[:_HEAD].split()))
    t = _LEAD_IN.sub("", t, count=1)
    m = _CLAUSE_END.search(t)
    t = t[: m.start()] if m and len(t[: m.start()].split()) >= 2 else re.split(r"[?.!;:\n]", t, maxsplit=1)[0]
    t = _HOW_DO_I.sub("how to ", t)
    words = t.split()[:9]
    if words and words[0] in _CAP_STOP:  # "Why the sky..." -> "why the sky...", "Paris" stays
        words[0] = words[0].lower()
    return " ".join(words).strip(" ,")


def _choices_in(text: str) -> list[tuple[str, str]]:
    return re.findall(r"(?m)^\s*\(?([A-H])[.)]\s+(.+?)\s*$", text)


_ARITH = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?(?:\s*(?:\*\*|[-+*/×÷x^%])\s*\(?-?\d+(?:\.\d+)?\)?)+)")
_OPS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                         ast.Div: operator.truediv, ast.Mod: operator.mod, ast.Pow: operator.pow,
                         ast.USub: operator.neg, ast.UAdd: operator.pos}


def _arithmetic(text: str) -> tuple[str, float] | None:
    """The first arithmetic expression in the text and its value, evaluated safely."""
    m = _ARITH.search(text[:_HEAD])
    if not m:
        return None
    expr = m.group(1).strip()
    py = expr.replace("×", "*").replace("÷", "/").replace("^", "**").replace("x", "*")
    try:
        value = _eval(ast.parse(py, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return expr, value


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError("not arithmetic")


def _fmt_number(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}" if abs(v) >= 10_000 else str(int(v))
    return f"{v:.6g}"



_CAPITALS = {
    "france": "Paris", "germany": "Berlin", "italy": "Rome", "spain": "Madrid", "portugal": "Lisbon",
    "japan": "Tokyo", "china": "Beijing", "india": "New Delhi", "canada": "Ottawa", "australia": "Canberra",
    "brazil": "Brasília", "mexico": "Mexico City", "egypt": "Cairo", "kenya": "Nairobi", "norway": "Oslo",
    "sweden": "Stockholm", "poland": "Warsaw", "netherlands": "Amsterdam", "switzerland": "Bern",
    "turkey": "Ankara", "argentina": "Buenos Aires", "south korea": "Seoul", "russia": "Moscow",
    "united kingdom": "London", "the uk": "London", "england": "London", "ireland": "Dublin",
    "united states": "Washington, D.C.", "the usa": "Washington, D.C.", "the us": "Washington, D.C.",
}
_KNOWN_PLACES = {c.lower(): c for c in (*_CITIES, *_CAPITALS.values())}
