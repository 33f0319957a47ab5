"""The modes over real HTTP with the official SDKs: `extra_body={"modelyard": {...}}` in, a top-level
`modelyard` field out (the SDKs keep it in `model_extra`), for both APIs, streamed too, with no
config (the embedded sim fleet) and with pipelines from a config file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml

from conftest import ServerThread, make_server

EXAMPLES = Path(__file__).parents[2] / "examples" / "pipelines"
MC = "Which planet is the largest?\nA) Mars\nB) Jupiter\nC) Venus\nAnswer:"


def oai(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Scripted voters and a research pipeline (the example file, plus the voters)."""
    cfg = yaml.safe_load((EXAMPLES / "research.yaml").read_text())
    for i, reply in enumerate(("Spam.", "spam", "Not spam"), 1):
        cfg["deployments"][f"v{i}"] = {"provider": "sim", "model": "sim/fast", "sim": {"answers": {"spam": reply}}}
    with make_server(tmp_path_factory.mktemp("modes"), cfg) as s:
        yield s


def test_vote_through_the_openai_sdk(scripted: ServerThread) -> None:
    raw = oai(scripted).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Is this spam? 'free prize'"}],
        extra_body={"modelyard": {"mode": "vote", "models": ["v1", "v2", "v3"], "min_agreement": 2,
                                  "normalize": "label", "labels": ["spam", "not spam"]}})
    r = raw.parse()
    meta = r.model_extra["modelyard"]
    assert meta["mode"] == "vote" and meta["answer"] == "spam" and meta["agreement"] == 2
    assert meta["confidence"] == pytest.approx(0.6667, abs=1e-3)
    assert meta["votes"] == {"v1": "spam", "v2": "spam", "v3": "not spam"}
    assert r.choices[0].message.content == "Spam."
    assert raw.headers["x-modelyard-route"] == "vote" and raw.headers["x-modelyard-deployment"] == "v1"
    assert float(raw.headers["x-modelyard-cost-usd"]) == pytest.approx(meta["cost_usd"])
    assert r.usage.prompt_tokens == sum(c["input_tokens"] for c in meta["calls"])


def test_pipelines_are_listed_as_models(scripted: ServerThread) -> None:
    models = {m.id: m for m in oai(scripted).models.list().data}
    assert models["pipeline/research"].model_extra["modelyard"]["type"] == "pipeline"
    assert models["pipeline/research"].model_extra["modelyard"]["inputs"] == ["topic"]


def test_pipeline_by_model_name(scripted: ServerThread) -> None:
    r = oai(scripted).chat.completions.create(
        model="pipeline/research", messages=[{"role": "user", "content": "solid-state batteries"}])
    meta = r.model_extra["modelyard"]
    assert [s["name"] for s in meta["steps"]] == ["queries", "background", "doubts", "synthesis", "summary"]
    assert all(s["status"] == "ok" for s in meta["steps"])
    assert len(meta["steps"][0]["output"]["queries"]) == 3  # the schema-shaped JSON, parsed
    assert r.choices[0].message.content == meta["steps"][-1]["output"]
    assert sum(s["cost_usd"] for s in meta["steps"]) == pytest.approx(meta["cost_usd"])


def test_streamed_pipeline_with_usage(scripted: ServerThread) -> None:
    stream = oai(scripted).chat.completions.create(
        model="pipeline/research", messages=[{"role": "user", "content": "tidal power"}], stream=True,
        stream_options={"include_usage": True})
    text, meta, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage, meta = chunk.usage, chunk.model_extra.get("modelyard")
    assert text and meta is not None and meta["steps"][-1]["status"] == "streamed"
    assert usage.prompt_tokens == sum(s["input_tokens"] for s in meta["steps"])
    assert meta["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in meta["steps"]))


def test_modes_work_on_the_embedded_fleet(server: ServerThread) -> None:
    c = oai(server)
    msgs = [{"role": "user", "content": MC}]
    vote = c.chat.completions.create(model="auto", messages=msgs,
                                     extra_body={"modelyard": {"mode": "vote", "normalize": "choice"}})
    meta = vote.model_extra["modelyard"]
    auto = next(m for m in httpx.get(server.url + "/v1/models").json()["data"] if m["id"] == "auto")
    group = auto["modelyard"]["deployments"]
    assert set(meta["votes"]) == set(group) and len(group) >= 2  # no models given: the `auto` group's
    assert meta["outcome"] in ("agreed", "tie", "no_agreement") and meta["min_agreement"] == len(group) // 2 + 1
    judged = c.chat.completions.create(model="smart", messages=msgs, extra_body={"modelyard": {"mode": "judge"}})
    jm = judged.model_extra["modelyard"]
    assert jm["judge"] == "sim/frontier" and jm["winner"].startswith("sim/") and jm["reason"]
    both = c.chat.completions.create(model="auto", messages=msgs,
                                     extra_body={"modelyard": {"mode": "all", "models": ["fast", "cheap"]}})
    assert len(both.choices) == 2 and [x["model"] for x in both.model_extra["modelyard"]["choices"]] == \
        ["fast", "cheap"]
    stream = c.chat.completions.create(model="fast", messages=msgs, stream=True,
                                       stream_options={"include_usage": True},
                                       extra_body={"modelyard": {"mode": "race"}})
    last = [ch for ch in stream][-1]
    fast = next(m for m in httpx.get(server.url + "/v1/models").json()["data"] if m["id"] == "fast")
    assert last.model_extra["modelyard"]["winner"] in fast["modelyard"]["deployments"]
    fused = c.chat.completions.create(model="auto", messages=msgs, extra_body={"modelyard": {"mode": "fuse"}})
    assert fused.model_extra["modelyard"]["fused"] is True and fused.choices[0].message.content


def test_anthropic_sdk_gets_the_same_metadata(scripted: ServerThread) -> None:
    client = anthropic.Anthropic(base_url=scripted.url, api_key="unused", max_retries=0)
    msg = client.messages.create(
        model="auto", max_tokens=100, messages=[{"role": "user", "content": "Is this spam? 'free prize'"}],
        extra_body={"modelyard": {"mode": "vote", "models": ["v1", "v2", "v3"], "normalize": "label",
                                  "labels": ["spam", "not spam"]}})
    assert msg.model_extra["modelyard"]["answer"] == "spam" and msg.content[0].text == "Spam."
    with client.messages.stream(model="pipeline/research", max_tokens=100,
                                messages=[{"role": "user", "content": "wind power"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text and final.usage.output_tokens > 0


def test_bad_mode_options_are_400_with_the_field(scripted: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai(scripted).chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "x"}],
            extra_body={"modelyard": {"mode": "vote", "models": ["v1", "v2"], "min_agreement": 5}})
    assert info.value.body["param"] == "modelyard.min_agreement"
    r = httpx.post(scripted.url + "/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": "x"}], "modelyard": {"mode": "judge",
                                                                                        "models": ["v1", "ghost"]}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "modelyard.models[1]"


def test_fan_out_over_the_cap_is_a_400_naming_the_cap(scripted: ServerThread) -> None:
    r = httpx.post(scripted.url + "/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": "x"}],
        "modelyard": {"mode": "judge", "swap": True, "models": ["v1", "v2", "v3"] * 5}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "modelyard.models"
    assert "resilience.caps.max_calls" in r.json()["error"]["message"]
    r = httpx.post(scripted.url + "/v1/chat/completions", json={
        "model": "v1", "messages": [{"role": "user", "content": "x"}], "metadata": {"max_attempts": "20"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "metadata.max_attempts"
