"""Cost = usage × card: cache writes at the write price (Anthropic, over its wire format), tiers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from modelyard.catalog import Catalog, ModelCard, PriceTier
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message, Usage

USAGE = {"input_tokens": 100, "cache_creation_input_tokens": 10_000, "cache_read_input_tokens": 2_000,
         "output_tokens": 50}


async def messages(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    msg = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
           "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": USAGE}
    if not body.get("stream"):
        return web.json_response(msg)
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    start = dict(msg, content=[], usage={k: v for k, v in USAGE.items() if k != "output_tokens"} | {"output_tokens": 1})
    events = [("message_start", {"type": "message_start", "message": start}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "hi"}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                 "usage": {"output_tokens": 50}}),
              ("message_stop", {"type": "message_stop"})]
    for name, data in events:
        await resp.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
    await resp.write_eof()
    return resp


@pytest.fixture
async def anthropic_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_cache_writes_billed_at_write_price(tmp_path: Path, anthropic_url: str, stream: bool) -> None:
    cfg = parse_config({"deployments": {"claude": {"provider": "anthropic", "model": "claude-sonnet-4-5",
                                                   "api_base": anthropic_url, "api_key": "env:T_ANTHROPIC_KEY"}},
                        "server": {"request_log": {"path": str(tmp_path / "l.db")}}}, "t.yaml")
    gw = Gateway(cfg, environ={"T_ANTHROPIC_KEY": "sk-ant-test"})
    req = ChatRequest(model="claude", messages=[Message("user", "hello")], stream=stream)
    async with gw:
        if stream:
            s = await gw.stream(req, request_id="r1")
            async for _ in s:
                pass
            usage, cost = s.usage, s.cost_usd
        else:
            r = await gw.chat(req, request_id="r1")
            usage, cost = r.usage, r.cost_usd
    assert usage is not None and usage.cache_write_tokens == 10_000 and usage.cached_input_tokens == 2_000
    assert usage.input_tokens == 12_100
    # $3 input, $0.30 cache read, $3.75 cache write (1.25×), $15 output per 1M
    want = (100 * 3.00 + 2_000 * 0.30 + 10_000 * 3.75 + 50 * 15.00) / 1e6
    assert cost == pytest.approx(want)
    row = gw.request_log.query("SELECT cost_usd, cache_write_tokens FROM requests WHERE id = 'r1'")[0]
    assert row == (pytest.approx(want), 10_000)


def test_long_context_tier_and_checked_date() -> None:
    card = Catalog().get("gemini-2.5-pro")
    assert card is not None and card.tiers
    short = card.cost(Usage(input_tokens=200_000, output_tokens=1_000))
    long = card.cost(Usage(input_tokens=200_001, output_tokens=1_000))
    assert short == pytest.approx((200_000 * 1.25 + 1_000 * 10) / 1e6)
    assert long == pytest.approx((200_001 * 2.50 + 1_000 * 15) / 1e6)
    assert card.worst_output_per_m == 15.0
    assert Catalog().get("claude-sonnet-5-5").checked == "2026-12-05"  # type: ignore[union-attr]


def test_catalog_override_with_tiers() -> None:
    cfg: Any = parse_config({"deployments": {"d": {"provider": "sim", "model": "sim/fast"}},
                             "catalog": {"sim/fast": {"cache_write_per_m": 0.2, "checked": "2026-12-01",
                                                      "tiers": [{"above_input_tokens": 10, "input_per_m": 1,
                                                                 "output_per_m": 2}]}}}, "t.yaml")
    card = Catalog({k: v.model_dump() for k, v in cfg.catalog.items()}).get("sim/fast")
    assert card is not None and card.checked == "2026-12-01" and card.cache_write_per_m == 0.2
    assert card.cost(Usage(input_tokens=11, output_tokens=1)) == pytest.approx((11 * 1 + 2) / 1e6)


@pytest.mark.parametrize("usage", [Usage(1234, 567), Usage(0, 0), Usage(10**9, 3),
                                   Usage(1234, 567, reasoning_tokens=9)])
def test_a_usage_without_cache_tokens_costs_what_the_full_formula_says(usage: Usage) -> None:
    """(the common case takes a short way: it must land on the same number, to the last bit)"""
    card = ModelCard("m", "openai", input_per_m=2.5, output_per_m=10.0, cached_input_per_m=1.25,
                     cache_write_per_m=3.75)
    full = ((usage.input_tokens * card.input_per_m + 0 * card.cached_input_per_m + 0 * card.cache_write_per_m)
            + usage.output_tokens * card.output_per_m) / 1_000_000
    assert card.cost(usage) == full
    tiered = dataclasses.replace(card, tiers=(PriceTier(above_input_tokens=1000, input_per_m=5.0, output_per_m=20.0),))
    assert tiered.cost(usage) == (usage.input_tokens * (5.0 if usage.input_tokens > 1000 else 2.5)
                                  + usage.output_tokens * (20.0 if usage.input_tokens > 1000 else 10.0)) / 1_000_000
