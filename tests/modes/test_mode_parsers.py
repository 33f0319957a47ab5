"""Reading structure out of model text: judge verdicts, JSON, vote normalisers, templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.modes.judge import parse_verdict
from modelyard.modes.normalize import choice, fold, normalizer, number
from modelyard.modes.parse import OutputParser, ParseError, extract_json
from modelyard.modes.spec import Spec, SpecError, parse_spec
from modelyard.modes.template import TemplateError, as_text, compile_template
from modelyard.modes.vote import count


@pytest.mark.parametrize("text, n, index, source", [
    ('{"index": 2, "reason": "more precise"}', 3, 2, "json"),
    ('```json\n{"best": "3", "explanation": "complete"}\n```', 3, 3, "json"),
    ('After comparing, my verdict: {"winner": 1, "rationale": "x"} — done.', 2, 1, "json"),
    ('[{"choice": 2}]', 2, 2, "json"),
    ("Candidate 1 is vague. Candidate 2 is the best answer.", 2, 2, "text"),
    ("The best is candidate #3 because it cites sources.", 3, 3, "text"),
    ("[[2]]", 4, 2, "text"),
    ("  2 ", 3, 2, "text"),
    ('{"index": 7}  but really I pick candidate 2', 3, 2, "text"),
    ("index: 1", 2, 1, "text"),
])
def test_verdicts_are_read_robustly(text: str, n: int, index: int, source: str) -> None:
    v = parse_verdict(text, n)
    assert v is not None and (v.index, v.source) == (index, source)


def test_verdict_reason_comes_from_the_json() -> None:
    v = parse_verdict('{"index": 1, "reason": "only one is correct"}', 2)
    assert v is not None and v.reason == "only one is correct"


@pytest.mark.parametrize("text", ["I can't decide.", '{"index": 0}', '{"index": 5}', "Candidate 1 or candidate 2?", ""])
def test_no_verdict(text: str) -> None:
    assert parse_verdict(text, 3) is None


@given(st.text(max_size=300), st.integers(min_value=1, max_value=10))
def test_verdict_parsing_never_fails_and_stays_in_range(text: str, n: int) -> None:
    v = parse_verdict(text, n)
    assert v is None or 1 <= v.index <= n


@pytest.mark.parametrize("text, doc", [
    ('{"a": 1}', {"a": 1}),
    ("Here:\n```json\n[1, 2]\n```\nthanks", [1, 2]),
    ('Result: {"a": {"b": [1]}} (as asked)', {"a": {"b": [1]}}),
    ('{broken {"ok": true}', {"ok": True}),
])
def test_extract_json(text: str, doc: object) -> None:
    assert extract_json(text) == doc


def test_extract_json_reports_an_excerpt() -> None:
    with pytest.raises(ParseError, match="no JSON found in 'just words'"):
        extract_json("just words")


def test_regex_parser_groups() -> None:
    import re

    assert OutputParser("regex", re.compile(r"label: (\w+)")).parse("label: spam") == "spam"
    assert OutputParser("regex", re.compile(r"(?P<k>\w+)=(?P<v>\d+)")).parse("x a=1") == {"k": "a", "v": "1"}
    assert OutputParser("regex", re.compile(r"\d+")).parse("it is 42") == "42"


@pytest.mark.parametrize("fn, text, expected", [
    (fold, "  **Paris.**  ", "paris"), (fold, "New\n  York", "new york"), (fold, "...", None),
    (number, "So the answer is **1,234**.", "1234"), (number, "x = 2.50 then y = 3", "3"), (number, "-7", "-7"),
    (number, "no digits", None), (choice, "I'd say (c).", "C"), (choice, "D) Paris", "D"),
    (choice, "The answer is option b", "B"), (choice, "none", None),
])
def test_normalisers(fn, text: str, expected: str | None) -> None:
    assert fn(text) == expected


def test_label_normaliser_prefers_the_longest_label_at_a_position() -> None:
    norm = normalizer(Spec("vote", normalize="label", labels=("spam", "Not Spam")))
    assert norm("Not spam — it is a receipt.") == "Not Spam" and norm("spam!") == "spam" and norm("ham") is None
    bare = normalizer(Spec("vote", normalize="label"))
    assert bare("Label: Positive (fairly sure)") == "positive" and bare("Negative.") == "negative"


def test_count_outcomes() -> None:
    assert count({"a": "x", "b": "x", "c": "y"}, 2, 3)["outcome"] == "agreed"
    assert count({"a": "x", "b": "y"}, 1, 2)["outcome"] == "tie"
    assert count({"a": "x", "b": None, "c": "y", "d": "x"}, 3, 4)["outcome"] == "no_agreement"
    assert count({"a": None}, 1, 1) == {"outcome": "no_agreement", "answer": None, "agreement": 0,
                                              "confidence": 0.0, "min_agreement": 1, "tally": {}}
    assert count({"a": "x"}, 2, 1)["outcome"] == "too_few_successes"


def test_spec_errors_name_the_field() -> None:
    for options, field in [({"mode": "vote", "models": "a"}, None), ({"mode": "vote", "models": [1]}, "models[0]"),
                           ({"mode": "vote", "swap": "yes"}, "swap"),
                           ({"mode": "race", "budget_usd": -1}, "budget_usd"),
                           ({"mode": "vote", "models": ["a"] * 17}, "models")]:
        if field is None:
            assert parse_spec(options).models == ("a",)  # "a,b" strings are accepted (CLI, query strings)
            continue
        with pytest.raises(SpecError) as info:
            parse_spec(options)
        assert info.value.field == field


def test_templates() -> None:
    t = compile_template("Q: {{ topic }} / {{ q.items.1 }} / {{input}}")
    got = t.render(lambda ref: {"topic": "owls", "input": "hi", "q": None}[ref.root] if not ref.path else "second")
    assert got == "Q: owls / second / hi"
    assert [r.text for r in t.refs] == ["topic", "q.items.1", "input"]
    for bad in ("{{ }}", "{{ a b }}", "open {{ x", "{{ a..b }}", "{{ {{ x }}"):
        with pytest.raises(TemplateError):
            compile_template(bad)
    assert as_text(["a", 2]) == "- a\n- 2" and as_text({"k": 1}) == '{\n  "k": 1\n}' and as_text(None) == ""


def test_the_registry_serves_every_mode_the_parser_accepts() -> None:
    from modelyard.modes.base import Mode
    from modelyard.modes.dispatch import MODES
    from modelyard.modes.spec import MODES as PARSED

    assert tuple(MODES) == PARSED
    assert all(isinstance(m, Mode) and m.name == name for name, m in MODES.items())
