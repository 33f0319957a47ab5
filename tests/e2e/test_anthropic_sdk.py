"""The official `anthropic` SDK against the gateway's /v1/messages, answered by the sim fleet."""

from __future__ import annotations

import anthropic
import pytest


def client(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


def test_messages_non_stream(server) -> None:
    raw = client(server).messages.with_raw_response.create(
        model="smart", max_tokens=256, system="You are terse.",
        messages=[{"role": "user", "content": "What is the capital of Japan?"}])
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant" and m.model == "smart"
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    assert raw.headers["x-modelyard-deployment"] == "sim/frontier"
    assert float(raw.headers["x-modelyard-cost-usd"]) > 0


def test_messages_stream_matches_non_stream(server) -> None:
    c = client(server)
    kw = dict(model="fast", max_tokens=512, messages=[{"role": "user", "content": "Describe a sunset."}])
    with c.messages.stream(**kw) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    full = c.messages.create(**kw)
    assert text == full.content[0].text == final.content[0].text
    assert final.usage.output_tokens == full.usage.output_tokens
    assert final.stop_reason == "end_turn"


def test_messages_tools(server) -> None:
    c = client(server)
    tools = [{"name": "lookup_stock", "description": "Look up a stock price",
              "input_schema": {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]}}]
    m = c.messages.create(model="smart", max_tokens=256, tools=tools, tool_choice={"type": "any"},
                          messages=[{"role": "user", "content": "What is ACME trading at?"}])
    assert m.stop_reason == "tool_use"
    use = next(b for b in m.content if b.type == "tool_use")
    assert use.name == "lookup_stock" and "ticker" in use.input
    m2 = c.messages.create(model="smart", max_tokens=256, tools=tools, messages=[
        {"role": "user", "content": "What is ACME trading at?"},
        {"role": "assistant", "content": [b.model_dump() for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "42.10 USD"}]},
    ])
    assert m2.stop_reason == "end_turn" and m2.content[0].text


async def test_async_stream(server) -> None:
    c = anthropic.AsyncAnthropic(base_url=server.url, api_key="unused", max_retries=0)
    async with c.messages.stream(model="cheap", max_tokens=100,
                                 messages=[{"role": "user", "content": "hello"}]) as s:
        final = await s.get_final_message()
    assert final.content[0].text
    await c.close()


def test_errors_in_anthropic_format(server) -> None:
    with pytest.raises(anthropic.NotFoundError) as e:
        client(server).messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e2:
        client(server).messages.create(model="fast", max_tokens=10,
                                       messages=[{"role": "system", "content": "x"}])
    assert "messages[0].role" in str(e2.value)
