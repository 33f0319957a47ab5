"""OpenAI chat-completions bodies into the neutral request: each field validated when sent."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import BadRequest
from modelyard.server.openai_api import parse_request

MSGS = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": MSGS, **fields}


def test_every_typed_field_lands_and_the_rest_is_forwarded() -> None:
    req = parse_request(body(
        tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        response_format={"type": "json_object"}, temperature=0.5, top_p=1, max_tokens=9, seed=7, n=2, stop="END",
        stream=True, stream_options={"include_usage": True}, user="u", metadata={"tier": "free"},
        logprobs=True, parallel_tool_calls=False))
    assert [t.name for t in req.tools or []] == ["f"] and req.tool_choice == {"name": "f"}
    assert req.response_format == {"type": "json_object"}
    assert (req.temperature, req.top_p, req.max_tokens, req.seed, req.n) == (0.5, 1.0, 9, 7, 2)
    assert req.stop == ["END"] and req.stream and req.include_usage and req.user == "u"
    assert req.metadata == {"tier": "free"}
    assert req.extra == {"logprobs": True, "parallel_tool_calls": False}


def test_nulls_are_as_good_as_absent() -> None:
    req = parse_request(body(temperature=None, max_tokens=None, stream=None, user=None, tools=None, stop=None))
    assert (req.temperature, req.max_tokens, req.stream, req.user, req.tools, req.stop, req.n) == (
        None, None, False, None, None, None, 1)
    assert req.extra is None or req.extra == {}


@pytest.mark.parametrize("order", ["completion_first", "max_tokens_first"])
def test_max_completion_tokens_wins_over_max_tokens(order: str) -> None:
    pair = [("max_completion_tokens", 5), ("max_tokens", "not checked: the newer name wins")]
    if order == "max_tokens_first":
        pair.reverse()
    assert parse_request(body(**dict(pair))).max_tokens == 5
    assert parse_request(body(max_tokens=3)).max_tokens == 3


@pytest.mark.parametrize("order", [("metadata", "modelyard"), ("modelyard", "metadata")])
def test_modelyard_overrides_metadata_whatever_the_order(order: tuple[str, str]) -> None:
    values = {"metadata": {"tier": "free", "team": "a"}, "modelyard": {"tier": "pro"}}
    req = parse_request(body(**{k: values[k] for k in order}))
    assert req.metadata == {"tier": "pro", "team": "a"}


@pytest.mark.parametrize(("fields", "param"), [
    ({"temperature": 3}, "temperature"), ({"top_p": "x"}, "top_p"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": 1.5}, "max_completion_tokens"), ({"n": 17}, "n"), ({"seed": True}, "seed"),
    ({"stop": [1]}, "stop"), ({"stream": "yes"}, "stream"), ({"stream_options": []}, "stream_options"),
    ({"user": 5}, "user"), ({"metadata": "x"}, "metadata"), ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"response_format": {"type": "xml"}}, "response_format.type"), ({"tools": {}}, "tools"),
])
def test_a_bad_field_is_named(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as e:
        parse_request(body(**fields))
    assert e.value.param == param and e.value.message.startswith(param + ":")
