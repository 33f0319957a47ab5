"""Bad input gets a clear 4xx that says what to fix — never a 5xx, a hang or a stack trace."""

from __future__ import annotations

import httpx
import pytest

OK_MSGS = [{"role": "user", "content": "hi"}]

CASES = [
    # (description, body bytes or obj, expected status, substring of the message)
    ("malformed json", b'{"model": "fast", "messages": [', 400, "not valid JSON"),
    ("empty body", b"", 400, "empty"),
    ("body is a list", [1, 2], 400, "JSON object"),
    ("missing model", {"messages": OK_MSGS}, 400, "model"),
    ("model not a string", {"model": 5, "messages": OK_MSGS}, 400, "model"),
    ("missing messages", {"model": "fast"}, 400, "messages"),
    ("empty messages", {"model": "fast", "messages": []}, 400, "messages"),
    ("messages not a list", {"model": "fast", "messages": "hi"}, 400, "messages"),
    ("message not an object", {"model": "fast", "messages": ["hi"]}, 400, "messages[0]"),
    ("invalid role", {"model": "fast", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ("role not a string", {"model": "fast", "messages": [*OK_MSGS, {"role": ["user"], "content": "x"}]}, 400,
     "messages[1].role"),
    ("missing role", {"model": "fast", "messages": [{"content": "x"}]}, 400, "messages[0].role"),
    ("content wrong type", {"model": "fast", "messages": [{"role": "user", "content": 5}]}, 400,
     "messages[0].content"),
    ("unknown part type", {"model": "fast", "messages": [{"role": "user", "content": [{"type": "video"}]}]}, 400,
     "messages[0].content[0].type"),
    ("tool message without id", {"model": "fast", "messages": [{"role": "tool", "content": "x"}]}, 400,
     "tool_call_id"),
    ("temperature string", {"model": "fast", "messages": OK_MSGS, "temperature": "hot"}, 400, "temperature"),
    ("temperature range", {"model": "fast", "messages": OK_MSGS, "temperature": 7}, 400, "temperature"),
    ("max_tokens zero", {"model": "fast", "messages": OK_MSGS, "max_tokens": 0}, 400, "max_tokens"),
    ("max_tokens float", {"model": "fast", "messages": OK_MSGS, "max_tokens": 1.5}, 400, "max_tokens"),
    ("n too large", {"model": "fast", "messages": OK_MSGS, "n": 1000}, 400, "n"),
    ("stream not bool", {"model": "fast", "messages": OK_MSGS, "stream": "yes"}, 400, "stream"),
    ("stop wrong type", {"model": "fast", "messages": OK_MSGS, "stop": 3}, 400, "stop"),
    ("tools not a list", {"model": "fast", "messages": OK_MSGS, "tools": {}}, 400, "tools"),
    ("tool without name", {"model": "fast", "messages": OK_MSGS, "tools": [{"type": "function"}]}, 400,
     "tools[0]"),
    ("bad tool_choice", {"model": "fast", "messages": OK_MSGS, "tool_choice": "always"}, 400, "tool_choice"),
    ("bad response_format", {"model": "fast", "messages": OK_MSGS, "response_format": {"type": "xml"}}, 400,
     "response_format"),
    ("unknown model", {"model": "gpt4o", "messages": OK_MSGS}, 404, "unknown model 'gpt4o'"),
]


@pytest.mark.parametrize(("desc", "body", "status", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_chat_request(server, desc, body, status, needle) -> None:
    content = body if isinstance(body, bytes) else None
    r = httpx.post(server.url + "/v1/chat/completions", content=content,
                   json=None if content is not None else body,
                   headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"]
    assert "Traceback" not in r.text


def test_oversize_body_is_413(server) -> None:
    big = b'{"model": "fast", "messages": [{"role": "user", "content": "' + b"x" * (9 << 20) + b'"}]}'
    r = httpx.post(server.url + "/v1/chat/completions", content=big, timeout=30)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]["message"]


def test_wrong_key_is_401(keyed_server) -> None:
    for headers in ({}, {"authorization": "Bearer nope"}, {"x-api-key": "nope"}):
        r = httpx.post(keyed_server.url + "/v1/chat/completions", json={"model": "fast", "messages": OK_MSGS},
                       headers=headers, timeout=10)
        assert r.status_code == 401
        assert "API key" in r.json()["error"]["message"]
    for headers in ({"x-api-key": "test-master-key"}, {"authorization": "Bearer test-master-key"},
                    {"authorization": "bearer test-master-key"}):
        r = httpx.post(keyed_server.url + "/v1/chat/completions", json={"model": "fast", "messages": OK_MSGS},
                       headers=headers, timeout=10)
        assert r.status_code == 200, headers
    r = httpx.post(keyed_server.url + "/v1/chat/completions", json={"model": "fast", "messages": OK_MSGS},
                   headers={"authorization": "Bearer test-master-key-and-more"}, timeout=10)
    assert r.status_code == 401


def test_unknown_route_and_method(server) -> None:
    assert httpx.get(server.url + "/v2/nothing", timeout=10).status_code == 404
    r = httpx.get(server.url + "/v1/chat/completions", timeout=10)
    assert r.status_code == 405


def test_health_and_ready(server) -> None:
    assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"
    assert httpx.get(server.url + "/ready", timeout=10).json()["status"] == "ready"
