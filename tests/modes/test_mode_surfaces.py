"""The Python methods (`client.race/all/vote/judge/fuse/pipeline`, sync and async) and
`modelyard chat --mode ...` run the same modes as HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from modekit import sim
from typer.testing import CliRunner

import modelyard
from modelyard.cli import app
from modelyard.loader import parse_config

EXAMPLES = Path(__file__).parents[2] / "examples" / "pipelines"
QUESTION = "What is the capital of Australia?"


def config(tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config({
        "deployments": {
            "a": sim(answers={"capital": "BEST: Canberra."}),
            "b": sim(answers={"capital": "Sydney."}),
            "c": sim(answers={"capital": "canberra"}),
            "judge": sim("sim/frontier", answers={f"### Candidate {k}\nBEST": f'{{"index": {k}, "reason": "r{k}"}}'
                                                  for k in (1, 2, 3)}),
        },
        "model_groups": {"abc": {"deployments": ["a", "b", "c"]}},
        "pipelines": {"echo": {"inputs": ["topic"], "steps": [
            {"name": "say", "model": "a", "prompt": "The capital of {{ topic }}?"}]}},
        "server": {"request_log": {"enabled": False}},
    }, "t.yaml")


def test_sync_client_methods(tmp_path) -> None:
    with modelyard.Client(config(tmp_path)) as client:
        v = client.vote(QUESTION, ["a", "b", "c"], normalize="label", labels=["canberra", "sydney"])
        assert v.modelyard["answer"] == "canberra" and v.modelyard["agreement"] == 2
        j = client.judge(QUESTION, ["b", "c", "a"], judge="judge", swap=True)
        assert j.modelyard["winner"] == "a" and j.modelyard["consistent"] is True and j.text == "BEST: Canberra."
        r = client.race(QUESTION, ["b", "a"])
        assert r.modelyard["winner"] in ("a", "b")
        everyone = client.all(QUESTION, model="abc")
        assert list(everyone.modelyard["answers"]) == ["a", "b", "c"]
        f = client.fuse(QUESTION, ["a", "b"], aggregator="c")
        assert f.modelyard["fused"] is True and f.text == "canberra"
        p = client.pipeline("echo", topic="Australia")
        assert p.text == "BEST: Canberra." and p.modelyard["steps"][0]["name"] == "say"


async def test_async_client_methods(tmp_path) -> None:
    async with modelyard.AsyncClient(config(tmp_path)) as client:
        v = await client.vote(QUESTION, ["a", "b", "c"], min_agreement=3, normalize="label",
                              labels=["canberra", "sydney"])
        assert v.modelyard["outcome"] == "no_agreement" and v.modelyard["agreement"] == 2 and v.text == ""
        v = await client.vote(QUESTION, ["a", "b", "c"])  # fold: three different answers, one vote each
        assert v.modelyard["outcome"] == "tie" and len(v.modelyard["tied"]) == 3
        p = await client.pipeline("echo", "Australia")
        assert p.text == "BEST: Canberra."
        chunks = [c async for c in client.stream(QUESTION, model="abc", modelyard={"mode": "judge", "judge": "judge"})]
        assert "".join(c.text or "" for c in chunks) == "BEST: Canberra."


@pytest.mark.parametrize("file, name, text, steps, output", [
    ("research.yaml", "research", "tidal power", ["queries", "background", "doubts", "synthesis", "summary"],
     "summary"),
    ("code-review.yaml", "code-review", "def add(a, b):\n    return a - b\n", ["review", "fix", "tests"], "fix"),
    ("classify-then-route.yaml", "triage", "Hello! How are you today?", ["kind", "answer"], "answer"),
])
def test_example_pipelines_run(file: str, name: str, text: str, steps: list[str], output: str) -> None:
    with modelyard.Client(str(EXAMPLES / file)) as client:
        r = client.pipeline(name, text)
    meta = r.modelyard
    assert [s["name"] for s in meta["steps"]] == steps and meta["output"] == output
    assert all(s["status"] == "ok" for s in meta["steps"])
    assert r.text == next(s["output"] for s in meta["steps"] if s["name"] == output)
    assert sum(s["cost_usd"] for s in meta["steps"]) == pytest.approx(r.cost_usd) and r.cost_usd > 0


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text("""
deployments:
  a: {provider: sim, model: sim/fast, sim: {answers: {spam: "Spam."}}}
  b: {provider: sim, model: sim/fast, sim: {answers: {spam: "spam"}}}
  c: {provider: sim, model: sim/fast, sim: {answers: {spam: "Not spam"}}}
""")
    return path


def test_cli_chat_mode_vote(cli_config: Path) -> None:
    result = CliRunner().invoke(app, ["chat", "-c", str(cli_config), "--mode", "vote", "--models", "a,b,c",
                                      "--min-agreement", "2", "Is this spam? free prize"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Spam.")
    assert "vote: agreed · answer 'spam' · agreement 2/2 needed · confidence 0.67" in result.stderr
    assert "  c: 'not spam'" in result.stderr and "3 calls · total $" in result.stderr


def test_cli_chat_bad_mode_exits_with_the_field(cli_config: Path) -> None:
    result = CliRunner().invoke(app, ["chat", "-c", str(cli_config), "--mode", "poll", "--models", "a,b", "x"])
    assert result.exit_code == 1 and "modelyard.mode: unknown mode 'poll'" in result.stderr
