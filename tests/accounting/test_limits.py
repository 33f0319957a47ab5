"""Rate limits: the caller's rpm/tpm through the Gateway; deployment rpm over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import make_server
from modelyard.errors import RateLimited
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import Caller, ChatRequest, Message, RateLimit


def gateway(tmp_path: Path, deployments: dict[str, Any], groups: dict[str, Any] | None = None) -> Gateway:
    cfg = parse_config({"deployments": deployments, "model_groups": groups or {},
                        "server": {"request_log": {"path": str(tmp_path / "log.db")}}}, "t.yaml")
    return Gateway(cfg, source="t.yaml")


def req(caller: Caller, model: str = "d", **kw: Any) -> ChatRequest:
    r = ChatRequest(model=model, messages=[Message("user", "hello there")], **kw)
    r.caller = caller
    return r


async def test_key_rpm_refuses_with_accurate_retry_after(tmp_path: Path) -> None:
    c = Caller(key_id="k1", limits=(RateLimit("key:k1", rpm=2),))
    async with gateway(tmp_path, {"d": {"provider": "sim", "model": "sim/fast"}}) as gw:
        t0 = time.time()
        await gw.chat(req(c))
        await gw.chat(req(c))
        with pytest.raises(RateLimited) as info:
            await gw.chat(req(c))
    e = info.value
    assert e.code == "rate_limit_exceeded" and "key:k1" in e.message and "2 requests per minute" in e.message
    # the first request leaves the window 60 s after it was taken
    assert e.retry_after is not None and 59 - (time.time() - t0) <= e.retry_after <= 60
    assert (b"retry-after", b"60") in e.headers() or (b"retry-after", b"59") in e.headers()
    rows = gw.request_log.query("SELECT status, error_type FROM requests ORDER BY row_id")
    assert rows == [(200, None), (200, None), (429, "rate_limit_error")]


async def test_key_tpm_counts_billed_tokens(tmp_path: Path) -> None:
    c = Caller(key_id="k1", limits=(RateLimit("key:k1", tpm=200),))
    async with gateway(tmp_path, {"d": {"provider": "sim", "model": "sim/fast"}}) as gw:
        with pytest.raises(RateLimited, match="more than the whole limit"):
            await gw.chat(req(c, max_tokens=500))  # can never fit: no pointless Retry-After
        used = 0
        with pytest.raises(RateLimited) as info:
            for _ in range(50):
                r = await gw.chat(req(c, max_tokens=20))
                used += r.usage.total_tokens
        assert used <= 200
        assert gw.resilience.store.rate_used("rate:key:k1", time.time())[1] == used  # recounted to billed
    assert info.value.retry_after is not None and info.value.retry_after > 50


async def test_full_deployment_is_routed_around_then_429(tmp_path: Path) -> None:
    deps = {"a": {"provider": "sim", "model": "sim/fast", "rpm": 2},
            "b": {"provider": "sim", "model": "sim/fast", "rpm": 1}}
    async with gateway(tmp_path, deps, {"g": {"deployments": ["a", "b"]}}) as gw:
        served = [(await gw.chat(req(Caller(), "g"))).deployment for _ in range(3)]
        with pytest.raises(RateLimited) as info:
            await gw.chat(req(Caller(), "g"))
    assert served == ["a", "a", "b"]
    assert info.value.code == "rate_limit_exceeded" and "deployment:" in info.value.message
    rows = gw.request_log.query("SELECT deployment, status FROM requests ORDER BY row_id")
    assert [r[0] for r in rows[:3]] == ["a", "a", "b"] and rows[3][1] == 429


def test_deployment_rpm_over_http(tmp_path: Path) -> None:
    """rpm: 2 on one deployment, over the real server with the openai SDK: the third request in the
    minute goes to the other deployment; with no other, it is a 429 with Retry-After."""
    cfg = {"deployments": {"limited": {"provider": "sim", "model": "sim/fast", "rpm": 2},
                           "spare": {"provider": "sim", "model": "sim/balanced"},
                           "solo": {"provider": "sim", "model": "sim/fast", "rpm": 2}},
           "model_groups": {"g": {"deployments": ["limited", "spare"]}}}
    with make_server(tmp_path, cfg) as s:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        msgs: Any = [{"role": "user", "content": "hi"}]
        got = []
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model="g", messages=msgs)
            got.append(raw.headers.get("x-modelyard-deployment"))
        assert got == ["limited", "limited", "spare"]
        client.chat.completions.create(model="solo", messages=msgs)
        client.chat.completions.create(model="solo", messages=msgs)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="solo", messages=msgs)
        err = info.value
        assert err.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
        assert 55 <= int(err.response.headers["retry-after"]) <= 60
