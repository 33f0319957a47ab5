"""The token estimator: exact on small known cases, close to o200k on realistic text, both code paths
(ASCII byte counting and the defining regex) in agreement."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.tokens import (
    _CLASS,
    _MASK_BYTES,
    IMAGE_TOKENS,
    _count_ascii,
    _count_pieces,
    _long_runs,
    _stand_in,
    _stand_ins,
    count_message_tokens,
    count_tokens,
    count_tools_tokens,
)
from modelyard.types import ImagePart, Message, TextPart, Tool, ToolCall

DATA = Path(__file__).parent / "data"

# Realistic texts with their o200k_base counts, measured with tiktoken when these tests were written.
SAMPLES = {
    "prose": (
        "The committee met on Tuesday to review the proposal for a new public library in the old "
        "railway station. Most members agreed that the building's high ceilings and central location "
        "made it an excellent choice, although several raised concerns about the cost of restoring "
        "the roof. After a long discussion, they asked the architects to prepare a detailed estimate "
        "before the next meeting, and to consider whether the project could be completed in two phases.",
        82,
    ),
    "question": (
        "Can you explain, in simple terms, why the sky looks blue during the day but turns red and "
        "orange at sunset? I'd like an answer a curious ten-year-old could follow.",
        36,
    ),
    "code": (
        "def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:\n"
        '    """Merge overlapping closed intervals and return them sorted."""\n'
        "    result: list[tuple[int, int]] = []\n"
        "    for start, end in sorted(intervals):\n"
        "        if result and start <= result[-1][1]:\n"
        "            result[-1] = (result[-1][0], max(result[-1][1], end))\n"
        "        else:\n"
        "            result.append((start, end))\n"
        "    return result\n",
        104,
    ),
    "json": (
        '{"id": "ord_7731", "customer": {"name": "Ada Lovelace", "email": "ada@example.com"}, '
        '"items": [{"sku": "BK-1843", "qty": 2, "price": 19.99}, {"sku": "PN-0042", "qty": 1, '
        '"price": 4.5}], "paid": true, "notes": null}',
        88,
    ),
    "numbers": ("Invoice 2024-0117: 3 items, total 1,284.50 EUR, due 15/02/2025 (ref 99812345).", 36),
}


def test_empty_is_zero() -> None:
    assert count_tokens("") == 0
    assert count_message_tokens([]) == 3  # only the reply priming


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", 4),  # Hello , ␠world !
        ("What is the capital of France?", 7),
        ("Say hi", 2),
        ("12345", 2),  # 123 45
        ("x = 1234", 5),  # x = ␠ 123 4: the blank before a number is a piece of its own
        ("camelCaseIdentifier", 3),  # camel Case Identifier
        ("self.items.append(x)", 5),  # self .items .append ( x )
        ("snake_case_name", 3),
        ("antidisestablishmentarianism", 5),  # a long word costs more than one
        ("a\n\n    b", 4),  # a, the line breaks, the indentation, b
    ],
)
def test_known_small_examples(text: str, expected: int) -> None:
    assert count_tokens(text) == expected


def test_cjk_counts_one_per_character() -> None:
    assert count_tokens("机器学习") == 4
    assert count_tokens("東京は日本の首都です。") == 11  # 10 characters and the full stop
    assert count_tokens("안녕하세요") == 5
    # Mixed with Latin text, each part is counted on its own.
    assert count_tokens("Python 是一种语言") == 1 + 5


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_close_to_o200k_on_realistic_text(name: str) -> None:
    text, o200k = SAMPLES[name]
    assert abs(count_tokens(text) - o200k) <= 0.1 * o200k


def test_close_to_o200k_in_aggregate() -> None:
    ours = sum(count_tokens(t) for t, _ in SAMPLES.values())
    ref = sum(n for _, n in SAMPLES.values())
    assert abs(ours - ref) <= 0.05 * ref


def test_ascii_fast_path_agrees_with_the_definition() -> None:
    texts = [t for t, _ in SAMPLES.values()]
    texts += ["Hello, world!", "x = 1234", "  a\n\n    b", "self.foo.bar()", "(((self", "...a",
              "snake_case", "getHTTPResponse", "A. True, True\nB. False, False\nAnswer:"]
    for text in texts:
        fast, slow = _count_ascii(text.encode()), _count_pieces(text)
        assert abs(fast - slow) <= max(1, 0.05 * slow), (text, fast, slow)


ASCII = "aZk9 _.(\n\t-:\"'"


def _view(cls) -> bytes:
    return bytes(ord(cls(chr(i))) for i in range(128)) + b"x" * 128


def _symbol(c: str) -> bool:
    return not c.isalnum() and not c.isspace() and c != "_"


_LETTERS = _view(lambda c: "a" if c.islower() else "A" if c.isupper() else " ")
_SYMBOLS = _view(lambda c: "." if _symbol(c) else " ")
_GLUE = _view(lambda c: "a" if c.isalpha() else "." if _symbol(c) else " " if c in " \t" else "x")
_DIGITS = _view(lambda c: "0" if c.isdigit() else " ")
_BREAKS = _view(lambda c: "n" if c == "\n" else "x")
_BLANKS = _view(lambda c: "s" if c in " \t" else "0" if c.isdigit() else "x")


def _count_by_views(b: bytes) -> int:
    """The ASCII count as first written: each class of piece counted as run starts (two-byte
    substrings) in a one-letter-per-class view of the text; a run of digits or symbols counts one
    here, and `_long_runs` adds the rest. The bitwise `_count_ascii` must agree."""
    if not b:
        return 0
    v = b.translate(_LETTERS)
    n = v.count(b" a") + v.count(b" A") + v.count(b"aA") + (v[0] != 32)
    n += sum(v.count(b"a" * k) for k in (12, 17, 22))
    v = b.translate(_SYMBOLS)
    n += v.count(b" .") + (v[0] == 46)
    v = b.translate(_GLUE)
    n -= v.count(b".a") - v.count(b"..a") - v.count(b" .a")
    v = b.translate(_DIGITS)
    n += v.count(b" 0") + (v[0] == 48)
    v = b.translate(_BREAKS)
    n += v.count(b"xn") + (v[0] == 110)
    v = b.translate(_BLANKS)
    n += v.count(b"xss") + v.count(b"0ss") + v.startswith(b"ss") + v.count(b"s0") - v.count(b"ss0")
    return n


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80)
       | st.text(alphabet="aaaaaZZ99 ...\n\t_#", max_size=120))
def test_bitwise_count_is_the_view_count(text: str) -> None:
    # (`_long_runs` itself is pinned to the definition below)
    b = text.encode()
    assert _count_ascii(b) == _count_by_views(b) + _long_runs(b.translate(_CLASS))


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="0123456789.,!?;:#(-_ aZz", max_size=80))
def test_runs_of_digits_and_symbols_count_as_the_definition_does(text: str) -> None:
    # blanks and line breaks aside (the one place the fast count stays an approximation of
    # `_PIECE`: blanks running into a line break), the ASCII count is the definition's
    assert _count_ascii(text.encode()) == _count_pieces(text)


@pytest.mark.parametrize(("text", "pieces"), [("0000000", 3), ("0000000000", 4), ("1234567890123", 5),
                                              ("!!!!a", 2), ("!!!!!!!a", 3), ("!!!!!!!", 3), ("!!!!!a", 3)])
def test_long_runs_are_cut_in_threes(text: str, pieces: int) -> None:
    assert count_tokens(text) == pieces == _count_pieces(text)


def test_bitwise_count_beyond_the_kept_masks() -> None:
    for text in (SAMPLES["code"][0], SAMPLES["json"][0], "x" * 30 + "Yz  9"):
        big = (text * (_MASK_BYTES // len(text) + 2)).encode()
        assert len(big) > _MASK_BYTES
        assert _count_ascii(big) == _count_by_views(big) + _long_runs(big.translate(_CLASS))
        at = big[:_MASK_BYTES]
        assert _count_ascii(at) == _count_by_views(at) + _long_runs(at.translate(_CLASS))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ASCII, max_size=40), st.text(alphabet=ASCII, max_size=40))
def test_monotone_when_text_grows_ascii(a: str, b: str) -> None:
    assert count_tokens(a) <= count_tokens(a + b)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZé9 .(-中ß", max_size=40), st.text(alphabet="aZé9 .(-中ß", max_size=40))
def test_monotone_when_text_grows_unicode(a: str, b: str) -> None:
    a = "é" + a  # stay on the non-ASCII path for both
    assert count_tokens(a) <= count_tokens(a + b)


def test_grows_with_length() -> None:
    text = SAMPLES["prose"][0]
    counts = [count_tokens(text * k) for k in range(1, 6)]
    assert counts == sorted(counts) and len(set(counts)) == 5
    assert counts[4] >= 4.5 * counts[0]


def test_long_texts_are_counted_and_cached_consistently() -> None:
    text = SAMPLES["code"][0] * 50  # in the cached size range
    assert count_tokens(text) == count_tokens(str(text)) == _count_ascii(text.encode())
    huge = SAMPLES["prose"][0] * 500  # above it
    assert count_tokens(huge) == _count_ascii(huge.encode())


def test_message_tokens_add_overheads() -> None:
    msgs = [Message("system", "You are terse."), Message("user", "Say hi")]
    assert count_message_tokens(msgs) == 3 + 4 + count_tokens("You are terse.") + 4 + 2
    as_dicts = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]
    assert count_message_tokens(as_dicts) == count_message_tokens(msgs)


def test_message_tokens_count_images_names_and_tool_calls() -> None:
    parts = Message("user", [TextPart("What is in this picture?"), ImagePart("https://x.test/a.png")])
    assert count_message_tokens([parts]) == 3 + 4 + count_tokens("What is in this picture?") + IMAGE_TOKENS

    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    with_call = Message("assistant", None, tool_calls=[call])
    expected = 3 + 4 + count_tokens("get_weather") + count_tokens('{"city": "Paris"}') + 3
    assert count_message_tokens([with_call]) == expected
    raw = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert count_message_tokens([raw]) == expected

    named = Message("user", "hi", name="alice")
    assert count_message_tokens([named]) == 3 + 4 + 1 + count_tokens("alice") + 1


def test_tool_definitions_cost_tokens() -> None:
    tool = Tool("get_weather", "Current weather for a city",
                {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    n = count_tools_tokens([tool])
    assert n > count_tokens("get_weather") + count_tokens("Current weather for a city")
    assert count_tools_tokens(None) == 0
    as_dict = {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                                "parameters": tool.parameters}}
    assert count_tools_tokens([as_dict]) == n


def _o200k_offline():
    """tiktoken's o200k encoding if its file is already cached locally; never downloads."""
    tiktoken = pytest.importorskip("tiktoken")
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    cache_dir = (os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
                 or os.path.join(tempfile.gettempdir(), "data-gym-cache"))
    if not os.path.exists(os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())):
        pytest.skip("o200k_base encoding not cached locally (tiktoken would download it)")
    try:
        return tiktoken.get_encoding("o200k_base")
    except Exception as e:  # a corrupt cache makes tiktoken try the network
        pytest.skip(f"o200k_base encoding cannot be loaded offline: {e}")


def test_against_tiktoken_when_available() -> None:
    enc = _o200k_offline()
    for text, recorded in SAMPLES.values():
        real = len(enc.encode(text))
        assert real == recorded
        assert abs(count_tokens(text) - real) <= 0.15 * real


# --- non-ASCII text on the fast path ---------------------------------------------------------------

NON_ASCII = "é’“É\u00a0٣½ßж\u2028—·ñ"  # letters (cased or not), quotes, a no-break space, digits, numerals


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ASCII + "A#", max_size=12), st.sampled_from(NON_ASCII),
       st.text(alphabet=ASCII + "A#", max_size=12))
def test_each_stand_in_is_what_the_definition_sees(before: str, c: str, after: str) -> None:
    # the pieces `_PIECE` cuts do not change when a non-ASCII character becomes its ASCII stand-in
    assert _count_pieces(before + c + after) == _count_pieces(before + _stand_in(c) + after)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZ9 .(\n\t_'é’中文\u00a0", max_size=40))
def test_cjk_characters_end_the_pieces_beside_them(text: str) -> None:
    runs = re.split("[中文]", text)
    assert count_tokens(text) == len(runs) - 1 + sum(count_tokens(r) for r in runs)


def test_non_ascii_prompts_count_as_the_definition_does() -> None:
    rows = [orjson.loads(line) for line in (DATA / "tasks.jsonl").read_bytes().splitlines() if line.strip()]
    texts = [r["text"] for r in rows if not r["text"].isascii()]
    assert len(texts) > 50  # 10 languages besides English, some with CJK
    assert [count_tokens(t) for t in texts] == [_count_pieces(t) for t in texts]



@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="".join(map(chr, range(1, 256))) + "“”‘’–—…€œŠ™•ж", min_size=1, max_size=40))
def test_western_text_counts_as_its_stand_ins(text: str) -> None:
    # Windows-1252 text (Latin-1, curly quotes, dashes...) is classed byte by byte (`_CLASS`'s upper
    # half); Latin-1's C1 controls and other scripts are mapped: either way the count of the stand-ins
    assert count_tokens(text) == _count_ascii(_stand_ins(text))


def test_the_codec_error_handler_is_registered_on_first_use_not_at_import() -> None:
    import subprocess
    import sys

    code = ("import codecs, modelyard.tokens as t\n"
            "def known():\n"
            "    try:\n"
            "        codecs.lookup_error(t._ERRORS)\n"
            "        return True\n"
            "    except LookupError:\n"
            "        return False\n"
            "before = known()\n"
            "n = t.count_tokens('αβγ δεζ ' * 60)\n"
            "print(before, known(), n > 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]
