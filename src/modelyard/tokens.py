"""A cheap, deterministic token counter.

Routing needs a token estimate for every request (context fit, TPM limits, cost guesses) and the
sim fleet needs honest usage numbers, without a 200k-entry BPE vocabulary or the network. This
counts the pieces OpenAI's o200k pre-tokenizer would cut and what each usually costs: a word is
one token (rare long words more), numbers one per three digits, symbols one per run of up to three
(a single symbol glued to the next word, as in `.append`, is free), a line break or a run of
indentation one, a CJK character one (a little above o200k's ~0.75: errs on the safe side for
context-fit checks). On English prose, code and JSON it lands within a few percent of o200k in
aggregate and within ~15% on single texts; it is an estimate, not a tokenizer.

`_PIECE` is the definition; pure-ASCII text (most prompts) takes `_count_ascii`, which computes
the same count with byte translations and substring counts, ~4x faster than a regex scan. Other
text takes the same path (`_count_unicode`): each non-ASCII character is replaced by an ASCII one
that `_PIECE` treats alike, and CJK characters, which no ASCII character stands in for, are cut
out first (each is a piece of its own and ends any piece beside it).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import orjson

IMAGE_TOKENS = 85  # an image part, at OpenAI's flat "low detail" rate
MESSAGE_OVERHEAD = 4  # per message: role and separators (OpenAI's chat convention)
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
TOOL_CALL_OVERHEAD = 3  # per tool call: its id and the function wrapper

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"

# Each match is one piece, usually one token: a word (cut at camelCase humps; one symbol right
# before it is glued on unless a blank precedes it), up to three digits, the blank before a
# number, up to three symbols, a CJK character, a line break, a run of indentation.
# `_` is a word character for `re` but neither letter nor symbol here: it costs nothing.
_PIECE = re.compile(
    rf"(?:(?<![ \t])[^\w\s])?(?:[A-Z]*[^\W\d_A-Z{_CJK}]+|[^\W\d_{_CJK}]+)"
    r"|\d{1,3}|[ \t](?=\d)"
    r"|[^\w\s]{1,3}"
    rf"|[{_CJK}]"
    r"|\s*\n"
    r"|[ \t]{2,}"
)
# Rare long words split into several BPE pieces: (len - 7) // 5 extra tokens.
_LONG = re.compile(rf"[^\W\d_A-Z{_CJK}]{{12,}}")

_CACHE_MIN, _CACHE_MAX = 256, 32_768  # cache texts in this size range (system prompts, history)


def count_tokens(text: str) -> int:
    """Approximate o200k token count of `text` (0 for the empty string)."""
    if not text:
        return 0
    if _CACHE_MIN <= len(text) <= _CACHE_MAX:
        return _count_cached(text)
    return _count(text)


def _count(text: str) -> int:
    return _count_ascii(text.encode("ascii")) if text.isascii() else _count_unicode(text)


def _count_pieces(text: str) -> int:
    """The defining count: one per `_PIECE` match, plus long-word extras."""
    n = len(_PIECE.findall(text))
    if max(map(len, text.split()), default=0) >= 12:  # a long word needs 12 characters without a blank
        for word in _LONG.findall(text):
            n += (len(word) - 7) // 5
    return n


_count_cached = lru_cache(maxsize=512)(_count)

_CJK_CHAR = re.compile(f"[{_CJK}]")
_ERRORS = "modelyard-token-class"  # the codec error handler below
# str.translate table: ASCII to itself, each non-ASCII character seen so far to its stand-in.
_TABLE: dict[int, str] = {i: chr(i) for i in range(128)}
_WINDOW = 256  # characters mapped per call of the error handler


def _count_unicode(text: str) -> int:
    """`_count_ascii`'s count for any text. A curly quote or an accented letter in an English
    prompt no longer sends the whole prompt through the regex (~5x slower on long prompts)."""
    if not _CJK_CHAR.search(text):
        return _count_ascii(text.encode("ascii", _ERRORS))
    # The runs between CJK characters, joined by "_": it is neither letter, digit, symbol nor
    # blank, so it ends every piece and starts none, as the CJK character it replaces did.
    runs = _CJK_CHAR.split(text)
    rest = "_".join(r for r in runs if r)
    return len(runs) - 1 + (_count_ascii(rest.encode("ascii", _ERRORS)) if rest else 0)


def _stand_in(c: str) -> str:
    """The ASCII character `_PIECE` treats like `c` (not CJK): non-ASCII letters and numerals are
    all lowercase-class (`[A-Z]` is ASCII only), decimal digits are digits, spaces are blanks that
    are neither tab, space nor newline (as a vertical tab), anything else a symbol."""
    return "\v" if c.isspace() else "0" if c.isdecimal() else "a" if c.isalnum() else "#"


def _ascii_stand_ins(err: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: the stand-ins for the next `_WINDOW` characters from the first one
    ASCII cannot encode (ASCII ones kept), so dense non-ASCII text costs one call per window and
    sparse text one call per stray character."""
    assert isinstance(err, UnicodeEncodeError)
    end = min(len(err.object), err.start + _WINDOW)
    window = err.object[err.start:end]
    for c in set(window):
        if ord(c) not in _TABLE:
            if len(_TABLE) > 65_536:  # bounded: start over from ASCII
                for k in [k for k in _TABLE if k >= 128]:
                    del _TABLE[k]
            _TABLE[ord(c)] = _stand_in(c)
    return window.translate(_TABLE), end


codecs.register_error(_ERRORS, _ascii_stand_ins)
class SystemPromptCache:
    """Token counts of system prompts, remembered whatever their length (short ones included): a
    deployment's traffic repeats the same few system prompts request after request. Bounded: when
    full it starts over."""

    def __init__(self, count: Callable[[str], int], size: int = 256) -> None:
        self.count, self.size = count, size
        self.counts: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        n = self.counts.get(text)
        if n is None:
            n = self.count(text)
            if len(text) <= _CACHE_MAX:
                if len(self.counts) >= self.size:
                    self.counts.clear()
                self.counts[text] = n
        return n


_count_system = SystemPromptCache(count_tokens)


def _view(cls: Any) -> bytes:
    """A bytes.translate table mapping each ASCII character to a one-letter class."""
    return bytes(ord(cls(chr(i))) for i in range(128)) + b"x" * 128


def _is_symbol(c: str) -> bool:
    return not c.isalnum() and not c.isspace() and c != "_"


_LETTERS = _view(lambda c: "a" if c.islower() else "A" if c.isupper() else " ")
_SYMBOLS = _view(lambda c: "." if _is_symbol(c) else " ")
_GLUE = _view(lambda c: "a" if c.isalpha() else "." if _is_symbol(c) else " " if c in " \t" else "x")
_DIGITS = _view(lambda c: "0" if c.isdigit() else " ")
_BREAKS = _view(lambda c: "n" if c == "\n" else "x")
_BLANKS = _view(lambda c: "s" if c in " \t" else "0" if c.isdigit() else "x")


def _count_ascii(b: bytes) -> int:
    """`_PIECE`'s count for ASCII text: each class of piece counted as run starts in a view. Views
    and counts that cannot find anything (no digits, no line breaks, no long words...) are skipped."""
    v = b.translate(_LETTERS)  # words: run starts plus camelCase humps, long-word extras
    n = v.count(b" a") + v.count(b" A") + v.count(b"aA") + (v[0] != 32)
    long = v.count(b"a" * 12)
    if long:
        n += long + v.count(b"a" * 17) + v.count(b"a" * 22)
    v = b.translate(_SYMBOLS)  # symbol runs, one more per four symbols
    n += v.count(b" .") + (v[0] == 46) + v.count(b"....")
    v = b.translate(_GLUE)  # minus single symbols glued to the word after them
    glued = v.count(b".a")
    if glued:
        n -= glued - v.count(b"..a") - v.count(b" .a")
    blanks = b.translate(_BLANKS)  # blanks "s", digits "0", anything else "x"
    digits = b"0" in blanks
    if digits:
        v = b.translate(_DIGITS)  # numbers, one more per four digits
        n += v.count(b" 0") + (v[0] == 48) + v.count(b"0000")
    if b"\n" in b:
        v = b.translate(_BREAKS)  # runs of line breaks
        n += v.count(b"xn") + (v[0] == 110)
    if b"ss" in blanks:  # indentation runs
        n += blanks.count(b"xss") + blanks.count(b"0ss") + blanks.startswith(b"ss")
    if digits:  # a lone blank before a number
        n += blanks.count(b"s0") - blanks.count(b"ss0")
    return n


def count_message_tokens(messages: Iterable[Any]) -> int:
    """Tokens of a chat prompt: content, tool calls and images, plus per-message overhead.

    Accepts `types.Message` objects or OpenAI-style dicts, so raw bodies can be counted too.
    """
    total = REPLY_PRIMING
    for m in messages:
        total += MESSAGE_OVERHEAD
        if isinstance(m, dict):
            content, name, calls = m.get("content"), m.get("name"), m.get("tool_calls") or ()
            role = m.get("role")
        else:
            content, name, calls, role = m.content, m.name, m.tool_calls or (), m.role
        if content:
            if not isinstance(content, str):
                total += _parts_tokens(content)
            elif role == "system":
                total += _count_system(content)
            elif len(content) < _CACHE_MIN:  # count_tokens, one call shorter (most user turns)
                total += _count_ascii(content.encode()) if content.isascii() else _count_unicode(content)
            else:
                total += count_tokens(content)
        if name:
            total += count_tokens(name) + 1
        for call in calls:
            if isinstance(call, dict):
                fn = call.get("function") or call
                fname, args = fn.get("name") or "", fn.get("arguments") or ""
            else:
                fname, args = call.name, call.arguments
            total += count_tokens(fname) + count_tokens(args) + TOOL_CALL_OVERHEAD
    return total


def token_bound(messages: Iterable[Any]) -> int:
    """An upper bound of `count_message_tokens(messages)` from lengths alone (~10x cheaper): every
    piece the estimate counts spans at least one character, a long word's extra pieces included.
    Lets the router skip counting when even the bound fits every context window."""
    total = REPLY_PRIMING
    for m in messages:
        if isinstance(m, dict):  # a raw body's message: counted (the router's path has Message objects)
            total += count_message_tokens((m,))
            continue
        total += MESSAGE_OVERHEAD
        content = m.content
        if content:
            if isinstance(content, str):
                total += len(content)
            else:
                for part in content:
                    total += len(part.text or "") if part.type == "text" else IMAGE_TOKENS
        if m.name:
            total += len(m.name) + 1
        for call in m.tool_calls or ():
            total += len(call.name) + len(call.arguments) + TOOL_CALL_OVERHEAD
    return total


def _parts_tokens(parts: Iterable[Any]) -> int:
    n = 0
    for part in parts:
        if isinstance(part, dict):
            kind = part.get("type")
            if kind == "text":
                n += count_tokens(part.get("text") or "")
            elif kind in ("image", "image_url", "input_image"):
                n += IMAGE_TOKENS
        elif part.type == "text":
            n += count_tokens(part.text)
        else:
            n += IMAGE_TOKENS
    return n


def count_tools_tokens(tools: Iterable[Any] | None) -> int:
    """Tokens the tool definitions add to a prompt (names, descriptions, JSON schemas)."""
    if not tools:
        return 0
    n = 0
    for t in tools:
        if isinstance(t, dict):
            fn = t.get("function") or t
            name, desc, params = fn.get("name") or "", fn.get("description") or "", fn.get("parameters")
        else:
            name, desc, params = t.name, t.description or "", t.parameters
        n += 8 + count_tokens(name) + count_tokens(desc)
        if params:
            n += count_tokens(orjson.dumps(params).decode())
    return n
