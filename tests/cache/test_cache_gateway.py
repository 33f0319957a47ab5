"""The cache through the Gateway object: tenants, semantic hits and their scope, the request log."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from modelyard.defaults import default_config_data
from modelyard.embed.backends import available
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.store.rows import Row
from modelyard.types import Caller, ChatRequest, Message, Tool

A = Caller(key_id="a1", key_name="team-a key", team="a")
B = Caller(key_id="b1", key_name="team-b key", team="b")
needs_minilm = pytest.mark.skipif(not available(), reason="the MiniLM embedding backend is not installed")


def gateway(**cache: Any) -> tuple[Gateway, list[Row]]:
    data = default_config_data(sim_only=True)
    data["cache"] = cache
    gw = Gateway(parse_config(data, "test.yaml"), source="test.yaml", request_log=False)
    seen: list[Row] = []
    gw.observers.append(seen.append)
    return gw, seen


def ask(text: str, caller: Caller, *, system: str | None = None, history: list[Message] | None = None,
        **kw: Any) -> ChatRequest:
    msgs = ([Message("system", system)] if system else []) + (history or []) + [Message("user", text)]
    return ChatRequest(model="sim/fast", messages=msgs, caller=caller, **kw)


async def test_tenant_a_never_gets_tenant_b_entry() -> None:
    gw, rows = gateway(mode="semantic")
    async with gw:
        a = await gw.chat(ask("What is our internal refund policy?", A))
        assert a.cache == "miss"
        b = await gw.chat(ask("What is our internal refund policy?", B))
        assert b.cache == "miss"  # not A's entry, exactly or semantically
        assert (await gw.chat(ask("What is our internal refund policy?", A))).cache == "hit"
        assert (await gw.chat(ask("What is our internal refund policy?", B))).cache == "hit"
        await gw.cache.clear(tenant="key:a1")
        assert (await gw.chat(ask("What is our internal refund policy?", A))).cache == "miss"
        assert (await gw.chat(ask("What is our internal refund policy?", B))).cache == "hit"
    assert [(r.key_id, r.cache) for r in rows] == [("a1", "miss"), ("b1", "miss"), ("a1", "hit"), ("b1", "hit"),
                                                  ("a1", "miss"), ("b1", "hit")]


async def test_the_master_key_is_a_tenant_of_its_own() -> None:
    gw, _ = gateway(mode="exact")
    async with gw:
        await gw.chat(ask("Which plan includes priority support?", A))
        msgs = [Message("user", "Which plan includes priority support?")]
        r = await gw.chat(ChatRequest(model="sim/fast", messages=msgs))
        assert r.cache == "miss"


@needs_minilm
async def test_semantic_hit_scope_and_row(tmp_path: Path) -> None:
    gw, rows = gateway(mode="semantic")
    async with gw:
        first = await gw.chat(ask("How do I reset my password on the website?", A, system="You are support."))
        hit = await gw.chat(ask("How can I reset my password on the website?", A, system="You are support."))
        assert hit.cache == "semantic-hit" and hit.cache_similarity is not None
        assert gw.cache.settings.semantic.threshold <= hit.cache_similarity < 1
        assert hit.text == first.text and hit.cost_usd == 0
        assert rows[-1].cache == "semantic-hit" and rows[-1].saved_usd == pytest.approx(first.cost_usd)
        # another system prompt, another parameter, another tenant: another scope
        q = "How can I reset my password on the website?"
        assert (await gw.chat(ask(q, A, system="Be brief."))).cache == "miss"
        assert (await gw.chat(ask("How can I reset my password on the website?", A, system="You are support.",
                                  max_tokens=50))).cache == "miss"
        assert (await gw.chat(ask("How can I reset my password on the website?", B, system="You are support."))
                ).cache == "miss"
        # a different meaning in the same words: numbers and negation are part of the scope
        await gw.chat(ask("How many calories are in 2 boiled eggs?", A))
        assert (await gw.chat(ask("How many calories are in 3 boiled eggs?", A))).cache == "miss"
        await gw.chat(ask("Can I take ibuprofen with food?", A))
        assert (await gw.chat(ask("Can I take ibuprofen without food?", A))).cache == "miss"


@needs_minilm
async def test_semantic_only_the_last_turn_may_differ() -> None:
    gw, _ = gateway(mode="semantic")
    turn1 = [Message("user", "I have a Python question."), Message("assistant", "Sure, ask away.")]
    other = [Message("user", "I have a Rust question."), Message("assistant", "Sure, ask away.")]
    async with gw:
        await gw.chat(ask("How do I read a file line by line?", A, history=turn1))
        r = await gw.chat(ask("How can I read a file line by line?", A, history=turn1))
        assert r.cache == "semantic-hit"
        r = await gw.chat(ask("How can I read a file line by line?", A, history=other))
        assert r.cache == "miss"  # same last turn, other history: never the Python answer


@needs_minilm
async def test_semantic_is_off_for_tools_unless_configured() -> None:
    tool = Tool("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
    for allowed, expected in ((False, "miss"), (True, "semantic-hit")):
        gw, _ = gateway(mode="semantic", semantic={"tools": allowed})
        async with gw:
            await gw.chat(ask("What is the weather like in Paris today?", A, tools=[tool]))
            r = await gw.chat(ask("How is the weather in Paris today?", A, tools=[tool]))
            assert r.cache == expected, allowed


@needs_minilm
async def test_short_turns_are_cached_exactly_only() -> None:
    gw, _ = gateway(mode="semantic", semantic={"min_chars": 40})
    async with gw:
        await gw.chat(ask("Define a monad.", A))
        assert (await gw.chat(ask("Define a monad.", A))).cache == "hit"
        assert (await gw.chat(ask("Define monads.", A))).cache == "miss"
        assert gw.cache.index is None or len(gw.cache.index) == 0


async def test_stream_hit_logs_one_row_with_the_saving() -> None:
    gw, rows = gateway(mode="exact")
    async with gw:
        first = await gw.chat(ask("Write one line about rain.", A))
        s = await gw.stream(dataclasses.replace(ask("Write one line about rain.", A), stream=True))
        assert s.cache == "hit" and s.cost_usd == 0
        text = "".join([c.text or "" async for c in s])
        assert text == first.text
    assert rows[-1].cache == "hit" and rows[-1].stream == 1 and rows[-1].status == 200
    assert rows[-1].saved_usd == pytest.approx(first.cost_usd) and rows[-1].cost_usd == 0


async def test_mode_off_costs_nothing_on_the_request_path() -> None:
    gw, rows = gateway()
    async with gw:
        assert gw.cache.idle
        r = await gw.chat(ask("Hello there, how are you?", A))
        assert r.cache is None and rows[-1].cache is None
        assert gw.cache.plan("sim/fast", ask("Hello there, how are you?", A)) is None
