"""The shipped price list: dated cards, known costs, tiers above their threshold, 1-hour cache writes
billed at 2x input over Anthropic's wire format (answers and streams, the fake server of test_cost)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from test_cost import USAGE, anthropic_url  # noqa: F401  # (the fake Anthropic server fixture)

from modelyard.catalog import Catalog, builtin_cards
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.providers.anthropic import usage_of
from modelyard.types import ChatRequest, Message, Usage


def test_every_card_has_a_checked_date_and_refreshed_ones_a_source() -> None:
    for name, card in builtin_cards().items():
        assert card.checked is not None, name
        when = dt.date.fromisoformat(card.checked)
        assert dt.date(2026, 11, 1) <= when <= dt.date(2026, 12, 31), name
        if when > dt.date(2026, 11, 23) and card.provider not in ("sim", "local", "llamacpp"):
            assert card.source and card.source.startswith("https://"), name


@pytest.mark.parametrize(("name", "usage", "want"), [
    # 10k prompt (2k cached), 1k output at the list prices
    ("gpt-5.5", Usage(input_tokens=10_000, cached_input_tokens=2_000, output_tokens=1_000),
     (8_000 * 5.00 + 2_000 * 0.50 + 1_000 * 30.00) / 1e6),
    ("gpt-5", Usage(input_tokens=10_000, cached_input_tokens=2_000, output_tokens=1_000),
     (8_000 * 1.25 + 2_000 * 0.125 + 1_000 * 10.00) / 1e6),
    ("claude-opus-5-5", Usage(input_tokens=10_000, cached_input_tokens=2_000, cache_write_tokens=3_000,
                              cache_write_1h_tokens=1_000, output_tokens=1_000),
     (5_000 * 4.00 + 2_000 * 0.20 + 2_000 * 5.00 + 1_000 * 8.00 + 1_000 * 20.00) / 1e6),
    ("claude-sonnet-4-6", Usage(input_tokens=10_000, cache_write_tokens=4_000, cache_write_1h_tokens=4_000,
                                output_tokens=1_000), (6_000 * 3.00 + 4_000 * 6.00 + 1_000 * 15.00) / 1e6),
    ("gpt-6-luna", Usage(input_tokens=10_000, cached_input_tokens=5_000, cache_write_tokens=1_000, output_tokens=100),
     (4_000 * 0.10 + 5_000 * 0.01 + 1_000 * 0.125 + 100 * 0.50) / 1e6),
    ("openai/gpt-oss-120b", Usage(input_tokens=10_000, output_tokens=1_000), (10_000 * 0.15 + 1_000 * 0.60) / 1e6),
    ("gemini-3-flash-preview", Usage(input_tokens=10_000, cached_input_tokens=4_000, output_tokens=1_000),
     (6_000 * 0.50 + 4_000 * 0.05 + 1_000 * 3.00) / 1e6),
])
def test_cost_of_a_known_usage(name: str, usage: Usage, want: float) -> None:
    card = Catalog().get(name)
    assert card is not None
    assert card.cost(usage) == pytest.approx(want)


@pytest.mark.parametrize(("name", "threshold", "below", "above"), [
    ("claude-haiku-5-5", 100_000, (0.10, 0.50, 0.01, 0.125, 0.20), (0.50, 2.50, 0.05, 0.625, 1.00)),
    ("claude-sonnet-4-5", 200_000, (3.00, 15.00, 0.30, 3.75, 6.00), (6.00, 22.50, 0.60, 7.50, 12.00)),
    ("gpt-5.4", 272_000, (2.50, 15.00, 0.25, 2.50, 2.50), (5.00, 22.50, 0.50, 5.00, 5.00)),
    ("gemini-3.1-pro-preview", 200_000, (2.00, 12.00, 2.00, 2.00, 2.00), (4.00, 18.00, 4.00, 4.00, 4.00)),
    ("gpt-6-astra", 272_000, (10.00, 50.00, 1.00, 12.50, 12.50), (20.00, 75.00, 2.00, 25.00, 25.00)),
])
def test_tiers_apply_to_the_whole_request_above_the_threshold(
        name: str, threshold: int, below: tuple[float, ...], above: tuple[float, ...]) -> None:
    card = Catalog().get(name)
    assert card is not None
    for n, (inp, out, cached, w5, w1) in ((threshold, below), (threshold + 1, above)):
        u = Usage(input_tokens=n, cached_input_tokens=10_000, cache_write_tokens=5_000, cache_write_1h_tokens=2_000,
                  output_tokens=1_000)
        want = ((n - 15_000) * inp + 10_000 * cached + 3_000 * w5 + 2_000 * w1 + 1_000 * out) / 1e6
        assert card.cost(u) == pytest.approx(want), n
    assert card.worst_input_per_m >= above[0] and card.worst_output_per_m == above[1]


def test_one_hour_writes_default_to_the_write_price_and_reserve_at_the_worst() -> None:
    cards = Catalog({"x": {"provider": "custom", "input_per_m": 1.0, "output_per_m": 2.0, "cache_write_per_m": 1.25}})
    x = cards.get("x")
    assert x is not None and x.cost(Usage(input_tokens=100, cache_write_tokens=100, cache_write_1h_tokens=40)) \
        == pytest.approx(100 * 1.25 / 1e6)
    opus = cards.get("claude-opus-4-1")
    assert opus is not None and opus.worst_input_per_m == 30.0  # a 1-hour write is the dearest prompt token


def test_usage_of_reads_the_lifetime_split() -> None:
    u = usage_of({"input_tokens": 10, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 5,
                  "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
                  "output_tokens": 7})
    assert (u.input_tokens, u.cache_write_tokens, u.cache_write_1h_tokens, u.cached_input_tokens) == (315, 300, 200, 5)
    only_split = usage_of({"input_tokens": 1, "cache_creation": {"ephemeral_5m_input_tokens": 4,
                                                                 "ephemeral_1h_input_tokens": 6}})
    assert (only_split.input_tokens, only_split.cache_write_tokens, only_split.cache_write_1h_tokens) == (11, 10, 6)
    with pytest.raises(ValueError):
        usage_of({"cache_creation_input_tokens": 1, "cache_creation": {"ephemeral_1h_input_tokens": 5}})
    with pytest.raises((TypeError, ValueError)):  # (both are the provider's "malformed upstream" errors)
        usage_of({"cache_creation": {"ephemeral_1h_input_tokens": "lots"}})


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_one_hour_writes_billed_at_twice_input(tmp_path: Path, anthropic_url: str,  # noqa: F811
                                                               stream: bool) -> None:
    USAGE["cache_creation"] = {"ephemeral_5m_input_tokens": 4_000, "ephemeral_1h_input_tokens": 6_000}
    try:
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
    finally:
        del USAGE["cache_creation"]
    assert usage is not None and usage.cache_write_tokens == 10_000 and usage.cache_write_1h_tokens == 6_000
    # $3 input, $0.30 cache read, $3.75 5-minute write (1.25x), $6 1-hour write (2x), $15 output per 1M
    want = (100 * 3.00 + 2_000 * 0.30 + 4_000 * 3.75 + 6_000 * 6.00 + 50 * 15.00) / 1e6
    assert cost == pytest.approx(want)
    row = gw.request_log.query("SELECT cost_usd FROM requests WHERE id = 'r1'")[0]
    assert row == (pytest.approx(want),)
