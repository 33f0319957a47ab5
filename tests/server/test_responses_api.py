"""POST /v1/responses (+ GET/DELETE) through the official openai SDK against the real server on the
sim fleet: plain, streamed (the SDK's stream helper parses every event), a function-tool round trip,
previous_response_id, stored responses per key, unsupported fields."""

from __future__ import annotations

import json
import sqlite3

import httpx
import openai
import pytest

WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_plain_text_with_instructions_reports_cost_and_usage(server) -> None:
    raw = client(server).responses.with_raw_response.create(
        model="smart", instructions="Answer briefly.", input="What is the capital of France?",
        metadata={"ticket": "42"}, max_output_tokens=200, temperature=0.2)
    r = raw.parse()
    assert r.id.startswith("resp_") and r.object == "response" and r.status == "completed"
    assert r.output_text and r.output[0].type == "message"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.metadata == {"ticket": "42"} and r.instructions == "Answer briefly." and r.max_output_tokens == 200
    assert raw.headers["x-modelyard-deployment"] == "sim/frontier"
    expected = (r.usage.input_tokens * 2.50 + r.usage.output_tokens * 10.00) / 1e6
    assert float(raw.headers["x-modelyard-cost-usd"]) == pytest.approx(expected, rel=1e-6)
    # the same text as the chat API gives for the same conversation
    chat = client(server).chat.completions.create(model="smart", messages=[
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"}], max_tokens=200, temperature=0.2)
    assert chat.choices[0].message.content == r.output_text


def test_multi_part_input_items(server) -> None:
    r = client(server).responses.create(model="sim/balanced", input=[
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": [{"type": "input_text", "text": "Describe "},
                                     {"type": "input_text", "text": "a cat."}]},
    ])
    assert r.output_text


def test_stream_parsed_by_the_sdk_helper(server) -> None:
    c = client(server)
    kinds: list[str] = []
    with c.responses.stream(model="fast", input="Tell me a short story about a fox.") as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert "response.output_text.delta" in kinds
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert final.status == "completed" and final.output_text and final.usage.output_tokens > 0
    extra = final.model_extra or {}
    assert extra["modelyard"]["deployment"] == "sim/fast"
    plain = c.responses.create(model="fast", input="Tell me a short story about a fox.")
    assert plain.output_text == final.output_text
    assert plain.usage.output_tokens == final.usage.output_tokens
    # the streamed response was stored too
    assert c.responses.retrieve(final.id).output_text == final.output_text


def test_function_tool_round_trip(server) -> None:
    c = client(server)
    first = c.responses.create(model="sim/frontier", input="What's the weather in Paris?", tools=[WEATHER],
                               tool_choice="required")
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    args = json.loads(calls[0].arguments)
    assert isinstance(args, dict)
    second = c.responses.create(model="sim/frontier", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp_c": 18, "sky": "clear"}'}])
    assert second.status == "completed" and second.output_text
    assert second.previous_response_id == first.id
    # the same conversation sent whole (the client keeps the state) works too
    third = c.responses.create(model="sim/frontier", store=False, tools=[WEATHER], input=[
        {"role": "user", "content": "What's the weather in Paris?"},
        *[o.model_dump() for o in first.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp_c": 18, "sky": "clear"}'}])
    assert third.output_text == second.output_text


def test_streamed_tool_call(server) -> None:
    with client(server).responses.stream(model="sim/frontier", input="What's the weather in Paris?",
                                         tools=[WEATHER], tool_choice="required") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    call = next(o for o in final.output if o.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) is not None


def test_previous_response_id_continues_the_conversation(server) -> None:
    c = client(server)
    first = c.responses.create(model="sim/balanced", input="My name is Ada. Remember it.")
    second = c.responses.create(model="sim/balanced", previous_response_id=first.id, input="What is my name?")
    # the follow-up carried the first turn and its answer: more input tokens than the question alone
    alone = c.responses.create(model="sim/balanced", input="What is my name?", store=False)
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens // 2
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="sim/balanced", previous_response_id=alone.id, input="again?")  # store=False


def test_get_and_delete(server) -> None:
    c = client(server)
    r = c.responses.create(model="fast", input="hello")
    got = c.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text and got.usage.total_tokens == r.usage.total_tokens
    c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(r.id)


def test_stored_in_the_request_log_database(server, tmp_path_factory) -> None:
    r = client(server).responses.create(model="fast", input="keep me")
    path = server.server.config.app.gateway.request_log.path
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT tenant, expires - created FROM responses WHERE id = ?", (r.id,)).fetchone()
    assert row[0] == "master" and row[1] == pytest.approx(30 * 86400)


@pytest.mark.parametrize(("field", "value"), [
    ("tools", [{"type": "web_search"}]),
    ("background", True),
    ("include", ["reasoning.encrypted_content"]),
    ("reasoning", {"effort": "high"}),
    ("conversation", "conv_1"),
    ("bogus_field", 1),
])
def test_unsupported_field_is_a_400_naming_it(server, field, value) -> None:
    body = {"model": "fast", "input": "hi", field: value}
    r = httpx.post(server.url + "/v1/responses", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] and err["param"].startswith(field)


def test_bad_input_names_the_field(server) -> None:
    r = httpx.post(server.url + "/v1/responses", json={"model": "fast", "input": [{"role": "robot", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].role"
    r = httpx.post(server.url + "/v1/responses", json={"model": "fast", "input": "x",
                                                        "text": {"format": {"type": "json_schema"}}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "text.format.schema"


def test_json_schema_output(server) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    r = client(server).responses.create(model="sim/frontier", input="Capital of France?",
                                        text={"format": {"type": "json_schema", "name": "a", "schema": schema}})
    assert isinstance(json.loads(r.output_text)["answer"], str)


def test_vote_mode_through_responses(server) -> None:
    r = client(server).responses.create(
        model="auto", input="Is this spam? 'WIN A FREE PRIZE'",
        extra_body={"modelyard": {"mode": "vote", "models": ["sim/fast", "sim/balanced", "sim/frontier"]}})
    tally = (r.model_extra or {})["modelyard"]
    assert "tally" in json.dumps(tally)
