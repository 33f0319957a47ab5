"""The official `openai` SDK against the running gateway, answered by the sim fleet."""

from __future__ import annotations

import json
import sqlite3
import time

import openai
import pytest

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_sync_non_stream_reports_model_deployment_cost(server) -> None:
    raw = client(server).chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "What is the capital of France?"}])
    r = raw.parse()
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert raw.headers["x-modelyard-deployment"] == "sim/frontier"
    assert raw.headers["x-modelyard-model"] == "sim/frontier"
    assert raw.headers["x-request-id"].startswith("req_")
    cost = float(raw.headers["x-modelyard-cost-usd"])
    # sim/frontier card: $2.50 in, $10.00 out per 1M tokens
    expected = (r.usage.prompt_tokens * 2.50 + r.usage.completion_tokens * 10.00) / 1e6
    assert cost == pytest.approx(expected, rel=1e-6)


def test_deterministic_answers(server) -> None:
    c = client(server)
    msgs = [{"role": "user", "content": "Explain recursion briefly."}]
    a = c.chat.completions.create(model="sim/balanced", messages=msgs).choices[0].message.content
    b = c.chat.completions.create(model="sim/balanced", messages=msgs).choices[0].message.content
    assert a == b


def test_sync_stream_with_usage(server) -> None:
    stream = client(server).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "Tell me a short story about a fox."}],
        stream=True, stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
            extra = chunk.model_extra or {}
            assert extra["modelyard"]["deployment"] == "sim/fast"
            assert extra["modelyard"]["cost_usd"] > 0
    assert text and finish == "stop"
    assert usage is not None and usage.completion_tokens > 0
    full = client(server).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "Tell me a short story about a fox."}])
    assert full.choices[0].message.content == text
    assert full.usage.completion_tokens == usage.completion_tokens


def test_stream_without_usage_has_no_usage_chunk(server) -> None:
    chunks = list(client(server).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_tools_round_trip(server) -> None:
    c = client(server)
    msgs = [{"role": "user", "content": "What's the weather in Paris? Use get_weather."}]
    r = c.chat.completions.create(model="smart", messages=msgs, tools=[WEATHER_TOOL], tool_choice="required")
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    msgs += [r.choices[0].message.model_dump(exclude_none=True),
             {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21, "sky": "clear"}'}]
    r2 = c.chat.completions.create(model="smart", messages=msgs, tools=[WEATHER_TOOL])
    assert r2.choices[0].message.content and not r2.choices[0].message.tool_calls


def test_streamed_tool_call(server) -> None:
    stream = client(server).chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True)
    name, args, finish = "", "", None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            name += tc.function.name or ""
            args += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and finish == "tool_calls"
    assert isinstance(json.loads(args), dict)


def test_json_mode(server) -> None:
    r = client(server).chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "Give me a user profile"}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {
            "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"]}}})
    obj = json.loads(r.choices[0].message.content)
    assert isinstance(obj["name"], str) and isinstance(obj["age"], int)


async def test_async_client_stream_and_non_stream(server) -> None:
    c = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    r = await c.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "Say hi"}])
    assert r.choices[0].message.content
    parts = []
    async for chunk in await c.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "Say hi"}], stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    assert "".join(parts) == r.choices[0].message.content
    await c.close()


def test_models_endpoint(server) -> None:
    ids = {m.id for m in client(server).models.list()}
    assert {"auto", "fast", "smart", "cheap", "sim/frontier", "sim/fast"} <= ids


def test_every_request_is_logged(server, tmp_path) -> None:
    c = client(server)
    raw = c.chat.completions.with_raw_response.create(model="fast", messages=[{"role": "user", "content": "log me"}])
    rid = raw.headers["x-request-id"]
    db = next(iter(server.server.config.app.gateway.request_log.path for _ in [0]))
    deadline = time.monotonic() + 5
    row = None
    while time.monotonic() < deadline and row is None:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT model, deployment, status, cost_usd, input_tokens FROM requests WHERE id = ?",
                               (rid,)).fetchone()
        time.sleep(0.05)
    assert row is not None
    assert row[0] == "fast" and row[1] == "sim/fast" and row[2] == 200 and row[3] > 0 and row[4] > 0


def test_master_key(keyed_server) -> None:
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}])
    assert "wrong" not in str(e.value) and "test-master-key" not in str(e.value)
    r = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="test-master-key", max_retries=0) \
        .chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content


def test_unknown_model_is_404_listing_names(server) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client(server).chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-17" in str(e.value) and "sim/fast" in str(e.value)
