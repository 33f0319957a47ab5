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
the same count with one byte translation and bitwise operations on the text as one integer (see
`_CLASS`), 5-10x faster than a regex scan — exactly, except where blanks run into a line break
(one piece for the definition; the bitwise pass may count the blanks apart, a piece more at most).
Other text takes the same path (`_count_unicode`): each non-ASCII character is replaced by an ASCII
one that `_PIECE` treats alike, and CJK characters, which no ASCII character stands in for, are cut
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
_CJK_MARK = b"\x00"  # what a CJK character becomes: the text is counted another way (`_count_unicode`)
_SEARCH_CJK = 1024  # texts up to this length are searched for CJK characters first (one C-level scan)
_WINDOW = 256  # characters mapped per call of the error handler; shorter texts are mapped at once


class _StandIns(dict[int, str]):
    """str.translate table: ASCII to itself, any other character to its stand-in (CJK characters to
    NUL), worked out the first time the character is looked up. Bounded: when full it starts over."""

    def __missing__(self, code: int) -> str:
        if len(self) > 65_536:
            for k in [k for k in self if k >= 128]:
                del self[k]
        c = chr(code)
        out = self[code] = "\x00" if _CJK_CHAR.match(c) else _stand_in(c)
        return out


_TABLE = _StandIns({i: chr(i) for i in range(128)})


def _count_unicode(text: str) -> int:
    """`_count_ascii`'s count for any text. A curly quote or an accented letter in an English
    prompt no longer sends the whole prompt through the regex (~5x slower on long prompts)."""
    if len(text) <= _SEARCH_CJK:  # (a long text is more likely mixed: one encoding pass spared)
        b = text.encode("cp1252", "ignore")
        if len(b) == len(text):  # Western European text (Latin-1 letters, curly quotes, dashes): `_CLASS`
            return _count_ascii(b)  # classes its upper half as their stand-ins, no character is mapped
    if len(text) > _SEARCH_CJK or not _CJK_CHAR.search(text):  # long texts: the handler finds CJK
        b = _stand_ins(text)
        if _CJK_MARK not in b:  # (a NUL of the text's own takes the CJK path too: the same count)
            return _count_ascii(b)
    # The runs between CJK characters, joined by "_": it is neither letter, digit, symbol nor
    # blank, so it ends every piece and starts none, as the CJK character it replaces did.
    runs = _CJK_CHAR.split(text)
    rest = "_".join(r for r in runs if r)
    return len(runs) - 1 + (_count_ascii(_stand_ins(rest)) if rest else 0)


def _stand_ins(text: str) -> bytes:
    """`text` with each non-ASCII character replaced by its stand-in, as ASCII bytes: a short text in
    one translation; a long one through the encoder, so its ASCII runs are copied in C and only
    windows from each other character are mapped (see the error handler)."""
    if len(text) <= _WINDOW:
        return text.translate(_TABLE).encode()
    if not _handler_registered:
        _register_handler()
    return text.encode("ascii", _ERRORS)


def _stand_in(c: str) -> str:
    """The ASCII character `_PIECE` treats like `c` (not CJK): non-ASCII letters and numerals are
    all lowercase-class (`[A-Z]` is ASCII only), decimal digits are digits, spaces are blanks that
    are neither tab, space nor newline (as a vertical tab), anything else a symbol."""
    return "\v" if c.isspace() else "0" if c.isdecimal() else "a" if c.isalnum() else "#"


def _ascii_stand_ins(err: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: the stand-ins for the next `_WINDOW` characters from the first one
    ASCII cannot encode (ASCII ones kept), so dense non-ASCII text costs one call per window and
    sparse text one call per stray character. A CJK character becomes `_CJK_MARK`: the caller
    then cuts the CJK characters out (`_count_unicode`)."""
    assert isinstance(err, UnicodeEncodeError)
    end = min(len(err.object), err.start + _WINDOW)
    out = err.object[err.start:end].translate(_TABLE)
    if "\x00" in out:  # CJK: the caller counts another way, no need to map the rest of the text
        return out, len(err.object)
    return out, end


_handler_registered = False


def _register_handler() -> None:
    """Register `_ascii_stand_ins` with the codec registry (process-wide): on first use, not at import."""
    global _handler_registered
    codecs.register_error(_ERRORS, _ascii_stand_ins)
    _handler_registered = True


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
_system_counts = _count_system.counts


def _is_symbol(c: str) -> bool:
    return not c.isalnum() and not c.isspace() and c != "_"


# Each ASCII byte becomes one byte of class bits (one bit per class, "lanes"); `int.from_bytes` then
# holds a whole text in one integer, where `<< 8` moves every byte's bits onto the next byte. A
# pattern of neighbouring classes is an AND of shifted copies, and counting its occurrences one
# `bit_count` — a handful of C-level passes whatever the text's length.
_LETTER, _LOWER, _UPPER, _SYMBOL, _DIGIT, _BLANK, _BREAK = 1, 2, 4, 8, 16, 32, 64


def _classes(c: str) -> int:
    if c.isalpha():
        return _LETTER | (_LOWER if c.islower() else _UPPER)
    if c.isdigit():
        return _DIGIT
    if c in " \t":
        return _BLANK
    if c == "\n":
        return _BREAK
    return _SYMBOL if _is_symbol(c) else 0  # "_", \r, \v, \f and the like: no piece


# Bytes 128-255 (Windows-1252 text encoded as such: Latin-1's letters and signs, curly quotes, dashes,
# the euro sign) get the classes of their characters' stand-ins (`_stand_in`).
_CLASS = bytes(_classes(chr(i)) for i in range(128)) + bytes(
    _classes(_stand_in(c)) if (c := bytes((i,)).decode("cp1252", "replace")) != "\ufffd" else 0
    for i in range(128, 256))  # (the five bytes cp1252 leaves undefined never occur)
_RUNS = _LETTER | _SYMBOL | _DIGIT | _BREAK  # a piece starts where a run of these starts
_MASK_BYTES = 1 << 15  # lane masks kept for texts up to this many bytes (4 x 32 KB); longer: built per text


def _lane_masks(n: int) -> tuple[int, int, int, int]:
    """Integers with the given lane bits set in each of n bytes: runs, upper, symbol, blank."""
    runs, upper, symbol, blank = (int.from_bytes(bytes((lane,)) * n, "little")
                                  for lane in (_RUNS, _UPPER, _SYMBOL, _BLANK))
    return runs, upper, symbol, blank


_MASKS = _lane_masks(_MASK_BYTES)
_LONG12, _LONG17, _LONG22 = (bytes((_LETTER | _LOWER,)) * k for k in (12, 17, 22))
_SYMBOLS4, _DIGITS4 = bytes((_SYMBOL,)) * 4, bytes((_DIGIT,)) * 4


def _count_ascii(b: bytes) -> int:
    """`_PIECE`'s count for ASCII text, every term over the whole text at once (see `_CLASS`):

    - a piece per run of letters, of symbols, of digits, of line breaks; one more per camelCase hump
      (an upper-case letter after a lower-case one);
    - minus a symbol glued to the word after it (a letter follows; no symbol or blank precedes);
    - a piece per run of two or more blanks (indentation), and per single blank before a digit;
    - long-word extras (runs of 12, 17, 22 lower-case letters: `bytes.count`, non-overlapping, as
      the view it was defined on), and the rest of runs of four or more digits or symbols
      (`_long_runs`: the definition cuts them in threes).
    """
    v = b.translate(_CLASS)
    x = int.from_bytes(v, "little")
    runs, upper, symbol, blank = _MASKS if len(v) <= _MASK_BYTES else _lane_masks(len(v))
    prev = x << 8  # at each byte, the class bits of the byte before it
    starts = x & ~prev  # classes that start a run at this byte
    n = ((starts & runs) | (x & (x << 9) & upper)  # upper-case lane: the byte before is lower-case
         | (starts & ((x >> 8) | (x >> 7)) & blank)).bit_count()  # blank lane: next is blank / digit
    n -= (x & (x >> 5) & ~(prev | (x << 6)) & symbol).bit_count()  # symbol lane: letter next, symbol /
    #                                                                 blank before
    long = v.count(_LONG12)
    if long:
        n += long + v.count(_LONG17) + v.count(_LONG22)
    if v.count(_SYMBOLS4) or v.count(_DIGITS4):
        n += _long_runs(v)
    return n


# In the class view: four or more digits, or four or more symbols.
_RUN4 = re.compile(b"%s{4,}|%s{4,}" % (re.escape(bytes((_DIGIT,))), re.escape(bytes((_SYMBOL,)))))


def _long_runs(v: bytes) -> int:
    """What the runs of four or more digits or symbols add to the one piece each run start counts
    (`v`: the text's class view, `_CLASS`): `_PIECE` cuts such a run in threes, except that a symbol
    run's last symbol, when it is left over alone in front of a letter, is glued to the word."""
    extra = 0
    for m in _RUN4.finditer(v):
        start, end = m.span()
        size = end - start
        pieces = (size + 2) // 3
        if size % 3 == 1 and v[start] == _SYMBOL and end < len(v) and v[end] & _LETTER:
            pieces -= 1
        extra += pieces - 1
    return extra


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
            elif role == "system":  # (`_count_system`, its dict read here: one call less)
                n = _system_counts.get(content)
                total += n if n is not None else _count_system(content)
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
