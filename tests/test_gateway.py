"""The pipeline: resolve → plan → call → fallback → account → log."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import NotFound, Unavailable
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message


def gateway(tmp_path: Path, deployments: dict[str, Any], groups: dict[str, Any]) -> Gateway:
    cfg = parse_config({"deployments": deployments, "model_groups": groups,
                        "server": {"request_log": {"path": str(tmp_path / "log.db")}}}, "t.yaml")
    return Gateway(cfg, source="t.yaml")


def req(model: str, text: str = "hello there", **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", text)], **kw)


async def test_fallback_to_next_deployment_and_logged(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "broken": {"provider": "sim", "model": "sim/fast", "sim": {"failure_rate": 1.0}},
        "good": {"provider": "sim", "model": "sim/balanced"},
    }, {"g": {"deployments": ["broken", "good"]}})
    async with gw:
        r = await gw.chat(req("g"), request_id="req_fb")
        assert r.deployment == "good"
        assert r.decision is not None and r.decision.fallbacks == ["broken"]
        assert r.cost_usd == pytest.approx(gw.deployments["good"].card.cost(r.usage))
    rows = gw.request_log.query("SELECT deployment, status, route FROM requests WHERE id = 'req_fb'")
    assert rows[0][0] == "good" and rows[0][1] == 200 and '"fallbacks":["broken"]' in rows[0][2]


async def test_all_failing_raises_last_error_and_logs_it(tmp_path) -> None:
    gw = gateway(tmp_path, {"a": {"provider": "sim", "model": "sim/fast", "sim": {"failure_rate": 1.0}}},
                 {"g": {"deployments": ["a"]}})
    async with gw:
        with pytest.raises(Unavailable):
            await gw.chat(req("g"), request_id="req_err")
    rows = gw.request_log.query("SELECT status, error_type FROM requests WHERE id = 'req_err'")
    assert rows == [(503, "upstream_unavailable")]


async def test_unhealthy_deployment_moves_to_the_back(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "flaky": {"provider": "sim", "model": "sim/fast", "sim": {"failure_rate": 1.0}},
        "steady": {"provider": "sim", "model": "sim/fast"},
    }, {"g": {"deployments": ["flaky", "steady"]}})
    async with gw:
        for _ in range(3):
            await gw.chat(req("g"))
        chain, decision = gw.plan(gw.resolve("g"), req("g"))
        assert [d.name for d in chain] == ["steady", "flaky"]
        assert decision.candidates[0].reason.startswith("cooling down")


async def test_weighted_group_spreads_by_weight(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "a": {"provider": "sim", "model": "sim/fast", "weight": 3},
        "b": {"provider": "sim", "model": "sim/fast", "weight": 1},
    }, {"g": {"deployments": ["a", "b"], "strategy": "weighted"}})
    counts = collections.Counter(gw.plan(gw.resolve("g"), req("g"))[0][0].name for _ in range(4000))
    assert 0.70 < counts["a"] / 4000 < 0.80


async def test_group_fallbacks_extend_the_chain(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "a": {"provider": "sim", "model": "sim/fast", "sim": {"failure_rate": 1.0}},
        "b": {"provider": "sim", "model": "sim/frontier"},
    }, {"g": {"deployments": ["a"], "fallbacks": ["h"]}, "h": {"deployments": ["b"]}})
    async with gw:
        r = await gw.chat(req("g"))
    assert r.deployment == "b"


async def test_unknown_model(tmp_path) -> None:
    gw = gateway(tmp_path, {"a": {"provider": "sim", "model": "sim/fast"}}, {})
    with pytest.raises(NotFound) as e:
        await gw.chat(req("zzz"))
    assert "available: a" in e.value.message


async def test_stream_falls_back_before_first_chunk(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "broken": {"provider": "sim", "model": "sim/fast", "sim": {"rate_limit_rate": 1.0}},
        "good": {"provider": "sim", "model": "sim/fast"},
    }, {"g": {"deployments": ["broken", "good"]}})
    async with gw:
        s = await gw.stream(req("g", stream=True))
        assert s.deployment.name == "good" and s.decision.fallbacks == ["broken"]
        chunks = [c async for c in s]
        assert chunks[-1].usage is not None and s.cost_usd > 0


async def test_stream_closed_early_records_partial_usage(tmp_path) -> None:
    gw = gateway(tmp_path, {"slow": {"provider": "sim", "model": "sim/balanced",
                                     "sim": {"ttft_ms": 1, "tokens_per_s": 200, "zero_latency": False}}},
                 {"g": {"deployments": ["slow"]}})
    async with gw:
        s = await gw.stream(req("g", "write a long essay about the history of the printing press", stream=True),
                            request_id="req_partial")
        it = aiter(s)
        await anext(it)
        await anext(it)
        await s.aclose()
        await asyncio.sleep(0)
    rows = gw.request_log.query("SELECT status, output_tokens, cost_usd FROM requests WHERE id = 'req_partial'")
    assert rows[0][0] == 499 and rows[0][1] > 0 and rows[0][2] > 0


def test_default_gateway_has_sim_fleet() -> None:
    gw = Gateway.default(sim_only=True, request_log=False)
    assert {"sim/frontier", "sim/balanced", "sim/fast", "sim/local"} <= set(gw.deployments)
    assert gw.resolve("auto").is_group
    assert gw.deployments["sim/frontier"].card.input_per_m > gw.deployments["sim/fast"].card.input_per_m


def test_env_keys_add_real_deployments_without_exposing_them() -> None:
    from modelyard.defaults import default_config

    cfg = default_config({"OPENAI_API_KEY": "sk-test-123", "MODELYARD_NO_OLLAMA": "1"})
    assert cfg.deployments["gpt-4o"].api_key == "env:OPENAI_API_KEY"
    assert "sk-test-123" not in cfg.model_dump_json()
