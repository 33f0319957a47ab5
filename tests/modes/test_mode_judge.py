"""Judge (best-of-n): the scripted best answer wins wherever it is shown; position bias is caught by
swap-and-repeat; unreadable or failed verdicts and failed candidates are explicit."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator

import pytest
from modekit import FAKE_CATALOG, FakeUpstream, answer, gateway, logged, openai_dep, req, sim, upstream_fixture

from modelyard.errors import BadRequest, NotFound
from modelyard.types import ChatRequest, Message

QUESTION = "What is the capital of Australia?"
CANDIDATES = {
    "a": sim("sim/fast", answers={"capital": "BEST: Canberra, chosen as a compromise between Sydney and Melbourne."}),
    "b": sim("sim/fast", answers={"capital": "Sydney."}),
    "c": sim("sim/fast", answers={"capital": "Melbourne, probably."}),
}


def fair_judge() -> dict:
    """A judge that reads the answers: it names whichever numbered candidate starts with BEST."""
    return sim("sim/frontier", answers={f"### Candidate {k}\nBEST": f'{{"index": {k}, "reason": "only #{k} is right"}}'
                                        for k in range(1, 6)})


def biased_judge() -> dict:
    """A judge with pure position bias: always the first candidate shown."""
    return sim("sim/frontier", answers={"### Candidate 1": 'I prefer candidate 1. {"index": 1, "reason": "first"}'})


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async for fake in upstream_fixture():
        yield fake


async def test_the_best_answer_wins_in_any_position(tmp_path) -> None:
    gw = gateway(tmp_path, {**CANDIDATES, "judge": fair_judge()})
    first_positions = set()
    async with gw:
        for seed, order in itertools.product(range(4), itertools.permutations("abc")):
            r = await gw.chat(ChatRequest(model="auto", messages=[Message("user", QUESTION)], seed=seed,
                                          metadata={"mode": "judge", "models": list(order), "judge": "judge"}))
            m = r.modelyard
            assert m["winner"] == "a" and r.text.startswith("BEST") and r.deployment == "a"
            assert m["reason"] == f"only #{m['verdicts'][0]['index']} is right" and m["verdict_parsed"] is True
            assert m["judge"] == "judge" and {c["model"] for c in m["candidates"]} == {"a", "b", "c"}
            first_positions.add(m["verdicts"][0]["order"].index("a"))
    assert first_positions == {0, 1, 2}  # the shuffle really moved the best answer around


async def test_swap_and_repeat_exposes_position_bias(tmp_path) -> None:
    gw = gateway(tmp_path, {**CANDIDATES, "fair": fair_judge(), "biased": biased_judge()})
    async with gw:
        r = await gw.chat(req(QUESTION, mode="judge", models=["c", "b", "a"], judge="biased", swap=True))
        m = r.modelyard
        picks = [v["pick"] for v in m["verdicts"]]
        assert m["consistent"] is False and picks[0] != picks[1]
        assert [v["order"] for v in m["verdicts"]][1] == m["verdicts"][0]["order"][::-1]
        # the tie goes to whichever of the two picks is listed first in `models`
        assert m["winner"] == min(picks, key=["c", "b", "a"].index)
        assert "position bias" in m["reason"]
        r = await gw.chat(req(QUESTION, mode="judge", models=["c", "b", "a"], judge="fair", swap=True))
        assert r.modelyard["consistent"] is True and r.modelyard["winner"] == "a"
        assert len([c for c in r.modelyard["calls"] if c["role"] == "judge"]) == 2


async def test_unreadable_or_failed_verdicts_fall_back_to_the_first_answer(tmp_path) -> None:
    gw = gateway(tmp_path, {**CANDIDATES, "mute": sim("sim/frontier", answers={"Candidate": "Hard to say, really."}),
                            "down": sim("sim/frontier", failure_rate=1.0)}, resilience={"retry": {"max_attempts": 1}})
    async with gw:
        r = await gw.chat(req(QUESTION, mode="judge", models=["b", "a", "c"], judge="mute"))
        m = r.modelyard
        assert m["verdict_parsed"] is False and m["winner"] == "b" and "could be read" in m["reason"]
        assert m["verdicts"][0]["text"] == "'Hard to say, really.'"
        r = await gw.chat(req(QUESTION, mode="judge", models=["b", "a"], judge="down"))
        assert r.modelyard["winner"] == "b" and r.modelyard["verdicts"][0]["error"]["status"] == 503


async def test_failed_candidates_are_left_out_and_one_answer_needs_no_judge(tmp_path) -> None:
    gw = gateway(tmp_path, {**CANDIDATES, "broken": sim(failure_rate=1.0), "judge": fair_judge()},
                 resilience={"retry": {"max_attempts": 1}})
    async with gw:
        r = await gw.chat(req(QUESTION, mode="judge", models=["broken", "b", "a"], judge="judge"), request_id="req_j")
        assert r.modelyard["winner"] == "a" and list(r.modelyard["errors"]) == ["broken"]
        assert r.modelyard["verdicts"][0]["order"] in (["b", "a"], ["a", "b"])
        log = await logged(gw, "req_j")
        r1 = await gw.chat(req(QUESTION, mode="judge", models=["broken", "b"], judge="judge"))
        assert r1.modelyard["winner"] == "b" and r1.modelyard["reason"] == "only one candidate answered"
        assert [c["role"] for c in r1.modelyard["calls"]] == ["candidate", "candidate"]
    # costs: candidates + judge, each logged, summing to the request's cost
    assert r.cost_usd == pytest.approx(sum(row["cost_usd"] for rid, row in log.items() if rid != "req_j"))
    assert sum(1 for c in r.modelyard["calls"] if c["role"] == "judge") == 1


async def test_structured_verdict_from_an_http_judge(tmp_path, upstream: FakeUpstream) -> None:
    def verdict(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        best = re.search(r"### Candidate (\d+)\nBEST", prompt)
        return f'```json\n{{"index": {best.group(1) if best else 1}, "reason": "it is correct"}}\n```'

    upstream.behaviours = {"judge-model": answer(verdict)}
    gw = gateway(tmp_path, {**CANDIDATES, "judge": openai_dep(upstream, "judge-model")}, catalog=FAKE_CATALOG)
    async with gw:
        r = await gw.chat(req(QUESTION, mode="judge", models=["b", "c", "a"], judge="judge"))
    assert r.modelyard["winner"] == "a" and r.modelyard["reason"] == "it is correct"
    rf = upstream.bodies[-1]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"]["properties"]["index"]["maximum"] == 3


async def test_default_judge_and_bad_judge(tmp_path) -> None:
    gw = gateway(tmp_path, {"lo": sim("sim/local"), "hi": sim("sim/frontier"), "mid": sim("sim/balanced")})
    async with gw:
        r = await gw.chat(req(QUESTION, mode="judge", models=["lo", "mid", "hi"]))
        assert r.modelyard["judge"] == "hi"  # the strongest candidate by catalog quality
        with pytest.raises(NotFound):
            await gw.chat(req(QUESTION, mode="judge", models=["lo", "hi"], judge="nobody"))
        with pytest.raises(BadRequest, match="at least 2"):
            await gw.chat(req(QUESTION, mode="judge", models=["lo"]))
