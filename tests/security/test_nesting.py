"""JSON nested deeper than can be forwarded (orjson reads 1,024 levels, writes 254) is a 400 that
names the field, on both APIs, wherever it hides: never a 500 from the parser, the router or the
provider adapter. (The bodies are written with the stdlib's json, which nests deeper.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from kit import ANSWER, GuardedServer, Upstream, one_deployment

from modelyard.server.http import MAX_JSON_DEPTH

received: list[dict[str, Any]] = []


async def _answer(request: web.Request) -> web.Response:
    received.append(orjson.loads(await request.read()))
    return web.json_response(ANSWER)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    up = Upstream(_answer)
    with GuardedServer(tmp_path_factory.mktemp("nest"), one_deployment(up.api_base)) as s:
        yield s


def nest(levels: int) -> dict[str, Any]:
    v: dict[str, Any] = {}
    for _ in range(levels - 1):
        v = {"a": v}
    return v


MSGS = [{"role": "user", "content": "hi"}]
CASES = {
    "an unknown field": ({"foo": nest(400)}, "foo"),
    "tool parameters": ({"tools": [{"type": "function", "function": {"name": "f", "parameters": nest(400)}}]},
                        "tools[0].function.parameters"),
    "a json schema": ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": nest(300)}}},
                      "response_format.json_schema.schema"),
    "tool call arguments": ({"messages": [*MSGS, {"role": "assistant", "tool_calls": [
        {"id": "1", "function": {"name": "f", "arguments": nest(300)}}]}, {"role": "tool", "tool_call_id": "1",
                                                                         "content": "x"}]}, "messages[1]"),
    "tool call arguments in a string": ({"messages": [*MSGS, {"role": "assistant", "tool_calls": [
        {"id": "1", "function": {"name": "f", "arguments": '{"a":' * 999 + "{}" + "}" * 999}}]},
        {"role": "tool", "tool_call_id": "1", "content": "x"}]}, "messages[1].tool_calls[0].function.arguments"),
}


@pytest.mark.parametrize("case", CASES)
def test_openai_requests_nested_too_deep_are_400_naming_the_field(server, case: str) -> None:
    extra, field = CASES[case]
    body = {"model": "g", "messages": MSGS, **extra}
    r = httpx.post(server.url + "/v1/chat/completions", content=json.dumps(body), timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["message"].startswith(field) and f"more than {MAX_JSON_DEPTH} levels" in err["message"]
    assert err["param"].startswith(field)


@pytest.mark.parametrize(("extra", "field"), [
    ({"tools": [{"name": "f", "input_schema": nest(400)}]}, "tools[0].input_schema"),
    ({"messages": [*MSGS, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                             "input": nest(400)}]}]}, "messages[1].content[0]"),
    ({"metadata": nest(250)}, "metadata"),
])
def test_anthropic_requests_nested_too_deep_are_400_naming_the_field(server, extra, field) -> None:
    body = {"model": "g", "max_tokens": 10, "messages": MSGS, **extra}
    r = httpx.post(server.url + "/v1/messages", content=json.dumps(body), timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(field)


def test_deeper_than_json_itself_is_a_400_too(server) -> None:
    raw = b'{"model": "g", "messages": [{"role": "user", "content": "hi"}], "foo": ' + b"[" * 1100 + b"]" * 1100 + b"}"
    r = httpx.post(server.url + "/v1/chat/completions", content=raw, timeout=30)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_nesting_within_the_limit_is_forwarded_untouched(server) -> None:
    received.clear()
    deep = nest(MAX_JSON_DEPTH - 2)  # (the body's own object and the field's level are the other two)
    body = {"model": "g", "messages": MSGS, "foo": deep}
    r = httpx.post(server.url + "/v1/chat/completions", content=json.dumps(body), timeout=30)
    assert r.status_code == 200, r.text
    assert received[-1]["foo"] == deep
