"""Canonical request keys: a hash of everything in the parsed request that can change the answer.

Nothing is allow-listed: every message part, the tools, tool choice, response format, every
sampling parameter, every unknown parameter (`req.extra`), `n`, `user`, the routing hints in
`metadata` and the tenant go into the key, so two requests share an entry only when the gateway
would send the same thing upstream for the same caller. What is left out only changes how the
answer is delivered: `stream`, `stream_options` and the cache directives themselves.

The semantic scope is the same hash without the last user turn, plus that turn's meaning markers
(`markers`): requests in one scope differ only in the wording of the last turn, whose embedding is
then compared. Markers are what embeddings are known to blur: numbers ("15% of 200" vs "of 300"),
negation ("can" vs "cannot"), named entities written with capitals ("France" vs "Germany") and
direction words ("largest" vs "smallest"). Two turns with different markers never share a scope, so
no threshold can serve one's answer for the other.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from ..types import ChatRequest, ImagePart, Message

VERSION = 2  # bump when the canonical form or the stored format (codec.py) changes: old entries then miss
DIRECTIVES = frozenset(("cache", "cache_control"))  # request metadata the cache reads, not part of the key


def _content(c: Any) -> Any:
    if c is None or isinstance(c, str):
        return c
    return [["image", p.url, p.detail] if isinstance(p, ImagePart) else ["text", p.text] for p in c]


def _message(m: Message) -> list[Any]:
    calls = [[t.id, t.name, t.arguments] for t in m.tool_calls] if m.tool_calls else None
    return [m.role, _content(m.content), m.name, calls, m.tool_call_id]


def _params(req: ChatRequest, tenant: str, route: str) -> list[Any]:
    meta = ({k: v for k, v in req.metadata.items() if k not in DIRECTIVES} or None) if req.metadata else None
    tools = [[t.name, t.description, t.parameters] for t in req.tools] if req.tools else None
    return [VERSION, tenant, route, tools, req.tool_choice, req.response_format, req.temperature, req.top_p,
            req.max_tokens, req.stop, req.seed, req.n, req.user, meta, req.extra or None]


def _digest(value: Any) -> str:
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[A-Za-z][A-Za-z'’]*")
_NEGATIONS = frozenset((
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot", "nowhere"))
_NUMBER_WORDS = frozenset((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty",
    "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand", "million", "billion",
    "half", "double", "twice", "triple", "first", "second", "third", "fourth", "fifth", "last"))
_DIRECTIONS = frozenset((
    "largest", "smallest", "biggest", "highest", "lowest", "most", "least", "best", "worst", "before", "after",
    "more", "less", "fewer", "increase", "decrease", "maximum", "minimum", "max", "min", "above", "below",
    "over", "under", "fastest", "slowest", "oldest", "youngest", "newest", "longest", "shortest", "hottest",
    "coldest", "cheapest", "richest", "poorest", "earliest", "latest", "upper", "lower", "north", "south",
    "east", "west", "left", "right", "start", "end", "open", "close", "add", "remove", "encrypt", "decrypt",
    "import", "export", "buy", "sell", "pros", "cons", "advantages", "disadvantages", "true", "false",
    # polarity: a word that flips the answer while the sentence stays the same
    "good", "bad", "better", "worse", "allow", "block", "accept", "decline", "reject", "enable", "disable",
    "stop", "benefits", "drawbacks", "risks", "safe", "unsafe", "dangerous", "legal", "illegal", "lose",
    "gain", "win", "children", "adults", "beginners", "experts", "hot", "cold", "wet", "dry", "up", "down",
    "inside", "outside", "positive", "negative", "dislike"))
# capitalised words that start questions and requests rather than name things
_NOT_NAMES = frozenset((
    "a", "an", "the", "what", "what's", "whats", "which", "who", "who's", "whom", "whose", "when", "where",
    "where's", "why", "how", "how's", "is", "are", "was", "were", "do", "does", "did", "can", "could",
    "would", "should", "will", "shall", "may", "might", "must", "please", "tell", "explain", "give", "list",
    "name", "describe", "write", "show", "i", "i'm", "i've", "i'd", "my", "me", "we", "our", "you", "your",
    "it", "its", "it's", "in", "on", "at", "for", "of", "to", "and", "or", "but", "if", "hey", "hi", "hello",
    "thanks", "ok", "okay", "so", "also", "summarize", "summarise", "define", "compare", "calculate",
    "convert", "translate", "find", "help", "let", "let's", "there", "this", "that", "these", "those", "be",
    "have", "has", "any", "some", "quick", "quickly", "briefly", "generally", "in", "as", "with", "by",
    "from", "into", "about", "roughly", "approximately", "exactly", "just", "now", "then", "yes", "could",
    "suggest", "recommend", "provide", "create", "make", "get", "need", "want", "looking", "wondering",
    "compose", "draft", "generate", "rewrite", "outline", "using", "use", "via", "after", "before",
))
_NEGATED = re.compile(r"n[’']t\b", re.IGNORECASE)


def markers(text: str) -> list[str]:
    """What two turns must share to be compared by meaning: numbers and capitalised names in the
    order they appear ("Celsius to Fahrenheit" is not "Fahrenheit to Celsius"), then the direction
    and polarity words and the negation count; lower-cased, possessive 's dropped."""
    found: dict[str, None] = {}  # names and numbers, in order
    words: set[str] = set()
    negations = len(_NEGATED.findall(text))
    for w in _TOKEN.findall(text):
        if w[0].isdigit():
            found[w] = None
            continue
        lw = w.lower().replace("’", "'")
        if lw.endswith("'s"):
            lw = lw[:-2]
        if lw in _NEGATIONS:
            negations += 1
        elif lw in _NUMBER_WORDS:
            found[lw] = None
        elif lw in _DIRECTIONS:
            words.add(lw)
        elif (w[0].isupper() and lw not in _NOT_NAMES and not _NEGATED.search(lw)) or any(
                c.isupper() for c in w[1:]):  # a name, or iPhone, JavaScript, SQL
            found[lw] = None
    return [*found, "|", *sorted(words), f"<not x{min(negations, 3)}>"]


def exact_key(req: ChatRequest, tenant: str, route: str) -> str:
    """The exact-cache key of a request sent by `tenant` and resolved to `route`."""
    return _digest(["exact", _params(req, tenant, route), [_message(m) for m in req.messages]])


def semantic_scope(req: ChatRequest, tenant: str, route: str, last_text: str) -> str:
    """The scope whose entries may answer this request: everything but the last message (the
    caller checks that it is a plain-text user turn, `last_text`), and that turn's markers."""
    return _digest(["semantic", _params(req, tenant, route), [_message(m) for m in req.messages[:-1]],
                    markers(last_text)])


def last_user_text(req: ChatRequest) -> str | None:
    """The last message's text when it is a user turn of text only; None otherwise (a tool result,
    an assistant prefill or an image: those requests are cached exactly only)."""
    if not req.messages:
        return None
    m = req.messages[-1]
    if m.role != "user" or m.tool_calls or m.name is not None or m.has_image():
        return None
    return m.text()
