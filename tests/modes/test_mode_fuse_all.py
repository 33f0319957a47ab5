"""Fuse (an aggregator merges the answers) and all (every answer, n-style, failures per model)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from modekit import FAKE_CATALOG, FakeUpstream, answer, gateway, logged, openai_dep, req, sim, upstream_fixture

from modelyard.errors import Unavailable

PROMPT = "Name a good first programming language."
NO_RETRY = {"retry": {"max_attempts": 1}}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async for fake in upstream_fixture():
        yield fake


def panel() -> dict[str, dict]:
    return {"p1": sim(answers={"programming": "Python: readable and everywhere."}),
            "p2": sim(answers={"programming": "JavaScript: it runs in every browser."}),
            "down": sim(failure_rate=1.0)}


async def test_fuse_gives_the_aggregator_every_answer_and_the_conversation(tmp_path, upstream: FakeUpstream) -> None:
    upstream.behaviours = {"agg": answer("Start with Python; learn JavaScript next.")}
    gw = gateway(tmp_path, {**panel(), "merger": openai_dep(upstream, "agg")}, catalog=FAKE_CATALOG,
                 resilience=NO_RETRY)
    async with gw:
        r = await gw.chat(req(PROMPT, mode="fuse", models=["p1", "down", "p2"], aggregator="merger"),
                          request_id="req_f")
        log = await logged(gw, "req_f")
    assert r.text == "Start with Python; learn JavaScript next." and r.deployment == "merger"
    m = r.modelyard
    assert m["fused"] is True and m["aggregator"] == "merger" and list(m["errors"]) == ["down"]
    assert [c["model"] for c in m["candidates"]] == ["p1", "p2"]
    sent = upstream.bodies[-1]["messages"]
    assert sent[0]["role"] == "system" and "## Answer 1\nPython" in sent[0]["content"]
    assert "## Answer 2\nJavaScript" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": PROMPT}
    sub = {rid: row for rid, row in log.items() if rid != "req_f"}
    assert len(sub) == 4 and r.cost_usd == pytest.approx(sum(row["cost_usd"] for row in sub.values()))
    assert r.usage.input_tokens == sum(row["input_tokens"] for row in sub.values())


async def test_fuse_without_aggregator_or_with_one_answer(tmp_path) -> None:
    gw = gateway(tmp_path, {**panel(), "agg-down": sim("sim/frontier", failure_rate=1.0),
                            "agg": sim("sim/frontier", answers={"programming": "FUSED"})}, resilience=NO_RETRY)
    async with gw:
        r = await gw.chat(req(PROMPT, mode="fuse", models=["p1", "p2"], aggregator="agg-down"))
        assert r.modelyard["fused"] is False and r.text.startswith("Python")
        assert r.modelyard["aggregator_error"]["status"] == 503
        r = await gw.chat(req(PROMPT, mode="fuse", models=["p1", "down"], aggregator="agg"))
        assert r.modelyard["fused"] is False and r.text.startswith("Python")
        assert all(c["role"] == "candidate" for c in r.modelyard["calls"])
        r = await gw.chat(req(PROMPT, mode="fuse", models=["p1", "p2"], aggregator="agg"))
        assert r.modelyard["fused"] is True and r.text == "FUSED"


async def test_streamed_fuse_streams_the_aggregator(tmp_path) -> None:
    gw = gateway(tmp_path, {**panel(), "agg": sim("sim/frontier", answers={"programming": "Fused reply here"})})
    async with gw:
        s = await gw.stream(req(PROMPT, mode="fuse", models=["p1", "p2"], aggregator="agg"), request_id="req_fs")
        chunks = [c async for c in s]
        log = await logged(gw, "req_fs")
    assert "".join(c.text or "" for c in chunks) == "Fused reply here" and s.deployment.name == "agg"
    usage = [c.usage for c in chunks if c.usage is not None]
    sub = [row for rid, row in log.items() if rid != "req_fs"]
    assert usage[-1].input_tokens == sum(row["input_tokens"] for row in sub)  # the whole request's usage
    assert s.cost_usd == pytest.approx(sum(row["cost_usd"] for row in sub))
    assert s.modelyard is not None and s.modelyard["fused"] is True
    assert log["req_fs"]["status"] == 200


async def test_all_returns_every_answer_labelled_and_reports_failures(tmp_path) -> None:
    gw = gateway(tmp_path, panel(), resilience=NO_RETRY)
    async with gw:
        r = await gw.chat(req(PROMPT, mode="all", models=["p1", "down", "p2"]), request_id="req_a")
        with pytest.raises(Unavailable, match="every candidate failed"):
            await gw.chat(req(PROMPT, mode="all", models=["down"]))
        s = await gw.stream(req(PROMPT, mode="all", models=["p1", "p2"]))
        chunks = [c async for c in s]
        log = await logged(gw, "req_a")
    assert [c.message.text() for c in r.choices] == ["Python: readable and everywhere.",
                                                    "JavaScript: it runs in every browser."]
    assert [c.index for c in r.choices] == [0, 1]
    m = r.modelyard
    assert [(c["index"], c["model"]) for c in m["choices"]] == [(0, "p1"), (1, "p2")]
    assert m["answers"]["p2"].startswith("JavaScript") and m["errors"]["down"]["type"] == "upstream_unavailable"
    assert r.cost_usd == pytest.approx(sum(c["cost_usd"] for c in m["choices"]))
    assert r.cost_usd == pytest.approx(sum(row["cost_usd"] for rid, row in log.items() if rid != "req_a"))
    # streamed: the answers replayed as two choices
    assert {c.index for c in chunks if c.text} == {0, 1}
    assert "".join(c.text or "" for c in chunks if c.index == 1).startswith("JavaScript")


async def test_closing_a_streamed_mode_early_closes_the_live_call(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MODELYARD_SIM_ZERO_LATENCY", raising=False)
    slow = sim("sim/frontier", answers={"programming": " ".join(["word"] * 400)}, zero_latency=False,
               ttft_ms=1, tokens_per_s=200, jitter=0.0)
    gw = gateway(tmp_path, {**panel(), "agg": slow})
    async with gw:
        s = await gw.stream(req(PROMPT, mode="fuse", models=["p1", "p2"], aggregator="agg"), request_id="req_fc")
        it = s.__aiter__()
        got = [await it.__anext__() for _ in range(3)]
        await s.aclose()
        log = await logged(gw, "req_fc")
    assert any(c.text for c in got)
    agg_row = next(row for row in log.values() if row["deployment"] == "agg")
    assert agg_row["status"] == 499 and 0 < agg_row["output_tokens"] < 400  # only what was delivered
    assert log["req_fc"]["status"] == 499
    assert s.cost_usd == pytest.approx(sum(row["cost_usd"] for rid, row in log.items() if rid != "req_fc"))
    assert s.modelyard is not None and [c["status"] for c in s.modelyard["calls"]][-1] == "cancelled"
