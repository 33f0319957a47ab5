"""Pipelines at run time: data flows through templates, parallel blocks run concurrently, parse
errors and failures name the step, optional steps degrade, routes pick models, budgets stop
spending, and every step's cost adds up to the request's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from modekit import FAKE_CATALOG, FakeUpstream, answer, gateway, logged, openai_dep, req, sim, upstream_fixture

from modelyard.errors import BadRequest, BudgetExceeded, ModelyardError, NotFound, Unavailable

FLOW = {
    "gen": sim(answers={"List queries": '{"queries": ["alpha q", "beta q"]}'}),
    "l": sim(answers={"alpha q": "LEFT SAW ALPHA"}),
    "r": sim("sim/balanced", answers={"beta q": "RIGHT SAW BETA"}),
    "f": sim("sim/frontier", answers={"LEFT SAW ALPHA\nRIGHT SAW BETA": "FINAL OK"}),
}
RESEARCH = {"inputs": ["topic"], "steps": [
    {"name": "q", "model": "gen", "prompt": "List queries. topic: {{ topic }}", "parse": "json"},
    {"parallel": [{"name": "left", "model": "l", "prompt": "Research {{ q.queries.0 }}"},
                  {"name": "right", "model": "r", "prompt": "Research {{ q.queries.1 }}"}]},
    {"name": "final", "model": "f", "prompt": "{{ left }}\n{{ right }}"},
]}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async for fake in upstream_fixture():
        yield fake


def sub_rows(log: dict[str, dict[str, Any]], rid: str) -> list[dict[str, Any]]:
    return [row for k, row in log.items() if k != rid]


async def test_outputs_flow_through_templates_and_costs_add_up(tmp_path) -> None:
    gw = gateway(tmp_path, FLOW, pipelines={"research": RESEARCH})
    async with gw:
        r = await gw.chat(req("batteries", model="pipeline/research"), request_id="req_p")
        log = await logged(gw, "req_p")
    assert r.text == "FINAL OK" and r.deployment == "f"
    m = r.modelyard
    assert m["mode"] == "pipeline" and m["pipeline"] == "research" and m["output"] == "final"
    steps = {s["name"]: s for s in m["steps"]}
    assert list(steps) == ["q", "left", "right", "final"]
    assert steps["q"]["output"] == {"queries": ["alpha q", "beta q"]}
    assert steps["left"]["output"] == "LEFT SAW ALPHA" and steps["right"]["deployment"] == "r"
    for s in steps.values():
        assert s["status"] == "ok" and s["input_tokens"] > 0 and s["output_tokens"] > 0 and s["latency_ms"] >= 0
    # per-step costs = the request's cost = the sub-call rows of the log; the parent row carries none
    assert sum(s["cost_usd"] for s in m["steps"]) == pytest.approx(r.cost_usd)
    assert r.cost_usd == pytest.approx(sum(row["cost_usd"] for row in sub_rows(log, "req_p")))
    assert r.usage.output_tokens == sum(s["output_tokens"] for s in m["steps"])
    assert log["req_p"]["cost_usd"] == 0 and log["req_p"]["model"] == "pipeline/research"
    assert {row["model"] for row in sub_rows(log, "req_p")} == {"gen", "l", "r", "f"}


async def test_streaming_streams_the_final_step(tmp_path) -> None:
    gw = gateway(tmp_path, FLOW, pipelines={"research": RESEARCH})
    async with gw:
        s = await gw.stream(req("batteries", model="pipeline/research"), request_id="req_ps")
        chunks = [c async for c in s]
        log = await logged(gw, "req_ps")
    assert "".join(c.text or "" for c in chunks) == "FINAL OK" and s.deployment.name == "f"
    assert s.modelyard is not None
    assert [st["status"] for st in s.modelyard["steps"]] == ["ok", "ok", "ok", "streamed"]
    assert s.modelyard["steps"][-1]["output_tokens"] > 0
    assert chunks[-1].usage is not None and chunks[-1].usage.input_tokens == sum(
        row["input_tokens"] for row in sub_rows(log, "req_ps"))
    assert s.cost_usd == pytest.approx(sum(st["cost_usd"] for st in s.modelyard["steps"]))
    assert log["req_ps"]["status"] == 200


async def test_parallel_blocks_run_concurrently(tmp_path, upstream: FakeUpstream) -> None:
    upstream.behaviours = {"slow-a": answer("A", delay=0.15), "slow-b": answer("B", delay=0.15),
                           "join": answer(lambda body: "joined " + body["messages"][-1]["content"])}
    gw = gateway(tmp_path, {"a": openai_dep(upstream, "slow-a"), "b": openai_dep(upstream, "slow-b"),
                            "j": openai_dep(upstream, "join")}, catalog=FAKE_CATALOG, pipelines={"p": {"steps": [
                                {"parallel": [{"name": "x", "model": "a", "prompt": "{{ input }}"},
                                              {"name": "y", "model": "b", "prompt": "{{ input }}"}]},
                                {"name": "z", "model": "j", "prompt": "{{ x }}+{{ y }}"}]}})
    async with gw:
        r = await gw.chat(req("go", model="pipeline/p"))
    assert r.text == "joined A+B"
    assert upstream.max_inflight == 2


async def test_parse_errors_fail_the_request_naming_the_step(tmp_path) -> None:
    gw = gateway(tmp_path, {"chatty": sim(answers={"JSON": "Sure! Here you go: no JSON, sorry."}), "f": sim()},
                 pipelines={"p": {"steps": [
                     {"name": "data", "model": "chatty", "prompt": "Reply in JSON: {{ input }}", "parse": "json"},
                     {"name": "use", "model": "f", "prompt": "{{ data }}"}]}})
    async with gw:
        with pytest.raises(ModelyardError) as info:
            await gw.chat(req("x", model="pipeline/p"), request_id="req_pe")
        log = await logged(gw, "req_pe")
    e = info.value
    assert e.status == 502 and e.type == "pipeline_step_failed"
    assert e.message.startswith("pipeline 'p' step 'data': the output does not parse as json: no JSON found in")
    assert log["req_pe"]["status"] == 502 and len(log) == 2  # the second step never ran


async def test_optional_steps_degrade_and_missing_fields_fail(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "chatty": sim(answers={"Label": "I'd rather not say."}),
        "broken": sim(failure_rate=1.0),
        "echo": sim(answers={"[]": "saw two empty outputs"}),
        "json": sim(answers={"emit": '{"a": 1}'}),
    }, pipelines={
        "soft": {"steps": [
            {"parallel": [
                {"name": "label", "model": "chatty", "prompt": "Label: {{ input }}", "parse": "regex",
                 "pattern": r"(?P<label>spam|ham)", "optional": True},
                {"name": "extra", "model": "broken", "prompt": "{{ input }}", "optional": True}]},
            {"name": "end", "model": "echo", "prompt": "[{{ label }}][{{ extra }}]"}]},
        "strict": {"steps": [
            {"name": "s1", "model": "json", "prompt": "emit", "parse": "json"},
            {"name": "s2", "model": "echo", "prompt": "{{ s1.b }}"}]},
        "hard": {"steps": [{"name": "only", "model": "broken", "prompt": "{{ input }}"}]},
    }, resilience={"retry": {"max_attempts": 1}})
    async with gw:
        r = await gw.chat(req("x", model="pipeline/soft"))
        steps = {s["name"]: s for s in r.modelyard["steps"]}
        assert r.text == "saw two empty outputs"
        assert steps["label"]["status"] == "failed" and steps["label"]["error"]["type"] == "pipeline_step_failed"
        assert "does not match" in steps["label"]["error"]["message"]
        assert steps["extra"]["status"] == "failed" and steps["extra"]["error"]["status"] == 503
        with pytest.raises(ModelyardError, match=r"\{\{ s1.b \}\} is missing from the output of 's1'") as info:
            await gw.chat(req("x", model="pipeline/strict"))
        assert info.value.status == 502
        with pytest.raises(Unavailable, match=r"^pipeline 'hard' step 'only': "):
            await gw.chat(req("x", model="pipeline/hard"))


async def test_route_picks_the_model_from_an_earlier_output(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "clf": sim(answers={"about code": "Category: CODE", "about cats": "Category: chat", "about fish": "??"}),
        "coder": sim("sim/frontier"), "talker": sim("sim/fast"), "fallback": sim("sim/local"),
    }, pipelines={"triage": {"steps": [
        {"name": "kind", "model": "clf", "prompt": "Classify: {{ input }}", "parse": "regex",
         "pattern": r"Category: (\w+)", "optional": True},
        {"name": "answer", "prompt": "{{ input }}",
         "route": {"by": "kind", "cases": {"code": "coder", "chat": "talker"}, "default": "fallback"}}]}})
    async with gw:
        got = {}
        for text in ("about code", "about cats", "about fish"):
            r = await gw.chat(req(text, model="pipeline/triage"))
            got[text] = (r.deployment, r.modelyard["steps"][1]["routed_on"])
    assert got == {"about code": ("coder", "code"), "about cats": ("talker", "chat"), "about fish": ("fallback", "")}


async def test_ensemble_steps_nest_and_their_costs_add_up(tmp_path) -> None:
    gw = gateway(tmp_path, {
        "v1": sim(answers={"spam": "Spam."}), "v2": sim(answers={"spam": "spam"}), "v3": sim(answers={"spam": "ham"}),
        "writer": sim("sim/balanced", answers={"verdict": "noted"}),
    }, pipelines={"check": {"steps": [
        {"name": "vote", "prompt": "Is this spam? {{ input }}",
         "ensemble": {"mode": "vote", "models": ["v1", "v2", "v3"], "normalize": "label", "labels": ["spam", "ham"]}},
        {"name": "note", "model": "writer", "prompt": "The verdict: {{ vote }}"}]}})
    async with gw:
        r = await gw.chat(req("free money!!!", model="pipeline/check"), request_id="req_pn")
        log = await logged(gw, "req_pn")
    assert r.text == "noted" and r.modelyard["steps"][0]["output"] == "Spam."
    ids = sorted(log)
    assert ids == ["req_pn", "req_pn.1", "req_pn.1.1", "req_pn.1.2", "req_pn.1.3", "req_pn.2"]
    assert log["req_pn.1"]["cost_usd"] == 0 and log["req_pn.1"]["route"]["strategy"] == "vote"
    assert r.cost_usd == pytest.approx(sum(row["cost_usd"] for row in log.values()))
    assert r.modelyard["steps"][0]["cost_usd"] == pytest.approx(
        sum(log[k]["cost_usd"] for k in ("req_pn.1.1", "req_pn.1.2", "req_pn.1.3")))


async def test_budget_stops_before_the_next_step(tmp_path) -> None:
    pipelines = {"p": {"budget_usd": 1e-9, "steps": [{"name": "a", "model": "x", "prompt": "{{ input }}"},
                                                     {"name": "b", "model": "x", "prompt": "{{ a }}"}]}}
    gw = gateway(tmp_path, {"x": sim("sim/frontier")}, pipelines=pipelines)
    async with gw:
        with pytest.raises(BudgetExceeded, match="budget before calling b") as info:
            await gw.chat(req("hello", model="pipeline/p"), request_id="req_pb")
        log = await logged(gw, "req_pb")
        r = await gw.chat(req("hello", model="pipeline/p", budget_usd=1.0))  # a request may raise it
    assert info.value.status == 429 and len(log) == 2 and log["req_pb"]["status"] == 429
    assert [s["status"] for s in r.modelyard["steps"]] == ["ok", "ok"]


async def test_inputs(tmp_path) -> None:
    pipelines = {"two": {"inputs": ["topic", "style"],
                         "steps": [{"name": "w", "model": "x", "prompt": "{{ topic }} in {{ style }} style"}]}}
    gw = gateway(tmp_path, {"x": sim(answers={"owls in haiku style": "OK"})}, pipelines=pipelines)
    async with gw:
        r = await gw.chat(req("ignored", model="pipeline/two", inputs={"topic": "owls", "style": "haiku"}))
        assert r.text == "OK"
        with pytest.raises(BadRequest, match="needs 'style'"):
            await gw.chat(req("x", model="pipeline/two", inputs={"topic": "owls"}))
        with pytest.raises(BadRequest, match=r"modelyard.inputs.mood: pipeline 'two' has no input 'mood'"):
            await gw.chat(req("x", model="pipeline/two", inputs={"topic": "a", "style": "b", "mood": "c"}))
        with pytest.raises(NotFound):
            await gw.chat(req("x", model="pipeline/none"))
