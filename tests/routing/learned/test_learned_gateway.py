"""Learned and semantic strategies inside the real gateway over HTTP; feedback into the request log
and into a live knn router; training from the log and replaying it (CLI)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from learnkit import synthetic, write_synthetic
from typer.testing import CliRunner

from conftest import make_server
from modelyard.cli import app as cli
from modelyard.defaults import default_config_data
from modelyard.errors import ConfigError
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.routing.learned.train import fit_router

HARD = "prove that theorem 77 holds for every prime number and derive the bound step by step"
EASY = "hello there, how are you today friend 77"


def _config(tmp_path: Path, options: dict[str, Any], strategy: str = "learned") -> dict[str, Any]:
    data = default_config_data(sim_only=True)
    data["model_groups"]["routed"] = {"deployments": ["sim/fast", "sim/frontier"], "strategy": strategy,
                                      "options": options}
    data.setdefault("server", {})["request_log"] = {"path": str(tmp_path / "requests.db"),
                                                    "flush_interval_s": 0.05}
    return data


@pytest.fixture(scope="module")
def router_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("router") / "knn.npz"
    fit_router("knn", synthetic(), strong="strong", weak="weak", backend="hash-ngram-v1", params={"k": 10}).save(path)
    return path


def _chat(url: str, model: str, prompt: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r


def test_learned_group_sends_hard_prompts_to_the_strong_model(tmp_path: Path, router_file: Path) -> None:
    opts = {"router_file": str(router_file), "threshold": 0.3,
            "models": {"sim/frontier": "strong", "sim/fast": "weak"}}
    with make_server(tmp_path, _config(tmp_path, opts)) as s:
        assert _chat(s.url, "routed", HARD).headers["x-modelyard-deployment"] == "sim/frontier"
        r = _chat(s.url, "routed", EASY)
        assert r.headers["x-modelyard-deployment"] == "sim/fast"
        assert r.headers["x-modelyard-route"].startswith("learned")
        # why, as `route --explain` shows it
        ex = httpx.post(f"{s.url}/v1/route/explain",
                        json={"model": "routed", "messages": [{"role": "user", "content": HARD}]}, timeout=10)
        assert ex.status_code == 200
        assert "predicted quality" in ex.text


def test_strong_share_option_calibrates_at_load(tmp_path: Path, router_file: Path) -> None:
    for share, want in ((1.0, "sim/frontier"), (0.0, "sim/fast")):
        opts = {"router_file": str(router_file), "strong_share": share,
                "models": {"sim/frontier": "strong", "sim/fast": "weak"}}
        gw = Gateway(parse_config(_config(tmp_path, opts), "t.yaml"), source="t.yaml", request_log=False)
        route = gw.resolve("routed")
        from modelyard.types import ChatRequest, Message

        chain, decision = gw.plan(route, ChatRequest(model="routed", messages=[Message("user", HARD)]))
        assert chain[0].name == want, decision


@pytest.mark.parametrize("content, needle", [
    (None, "not found; train one"),
    (b"garbage", "corrupt or not a modelyard router file"),
])
def test_missing_or_corrupt_router_file_is_a_config_error(tmp_path: Path, content: bytes | None, needle: str) -> None:
    path = tmp_path / "r.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        parse_config(_config(tmp_path, {"router_file": str(path)}), "gw.yaml")
    msg = str(e.value)
    assert "gw.yaml" in msg and "model_groups.routed.options.router_file" in msg and needle in msg


def test_bad_learned_options_name_the_field(tmp_path: Path, router_file: Path) -> None:
    cases = [({"router_file": str(router_file), "threshold": 0.1, "strong_share": 0.2}, "set one of"),
             ({"router_file": str(router_file), "models": {"sim/frontier": "gpt-9"}}, "predicts no model 'gpt-9'"),
             ({"router_file": str(router_file), "models": {"sim/nope": "strong"}}, "not a deployment"),
             ({"router_file": str(router_file), "bogus": 1}, "unknown option 'bogus'")]
    for opts, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            parse_config(_config(tmp_path, opts), "gw.yaml")
    # a router whose models match none of the group's deployments
    with pytest.raises(ConfigError, match="map at least two"):
        Gateway(parse_config(_config(tmp_path, {"router_file": str(router_file)}), "gw.yaml"), request_log=False)


def test_semantic_strategy_routes_by_example_similarity(tmp_path: Path) -> None:
    opts = {"backend": "hash-ngram-v1", "threshold": 0.3, "default": "sim/fast",
            "routes": {"sim/frontier": ["prove that the theorem holds for every prime number",
                                        "derive the bound step by step"],
                       "sim/fast": ["hello there, how are you", "say hi to my cat"]}}
    with make_server(tmp_path, _config(tmp_path, opts, "semantic")) as s:
        assert _chat(s.url, "routed", HARD).headers["x-modelyard-deployment"] == "sim/frontier"
        assert _chat(s.url, "routed", EASY).headers["x-modelyard-deployment"] == "sim/fast"
        # nothing like any example: the default
        assert _chat(s.url, "routed", "qqqq zzzz xxxx").headers["x-modelyard-deployment"] == "sim/fast"
    with pytest.raises(ConfigError, match=r"options.routes.sim/nope: not a deployment"):
        parse_config(_config(tmp_path, {"routes": {"sim/nope": ["x"]}}, "semantic"), "gw.yaml")


def test_feedback_is_stored_learned_online_and_trains_a_router(tmp_path: Path, router_file: Path) -> None:
    opts = {"router_file": str(router_file), "threshold": 0.3,
            "models": {"sim/frontier": "strong", "sim/fast": "weak"}}
    novel = "hello there friend, what colour is my cat on a sunny day"
    with make_server(tmp_path, _config(tmp_path, opts)) as s:
        r = _chat(s.url, "routed", novel)
        first = r.headers["x-modelyard-deployment"]
        assert first == "sim/fast"
        rid = r.headers["x-request-id"]
        fb = httpx.post(f"{s.url}/v1/feedback", json={"request_id": rid, "score": 0.0, "prompt": novel,
                                                       "comment": "missed the rhyme"}, timeout=10)
        assert fb.status_code == 200, fb.text
        body = fb.json()
        assert body["request_id"] == rid and body["deployment"] == "sim/fast" and body["learned_by"] == 1
        for _ in range(6):  # the knn router hears it a few more times: the weak model fails on this prompt
            httpx.post(f"{s.url}/v1/feedback", json={"request_id": rid, "score": 0.0, "prompt": novel}, timeout=10)
        assert _chat(s.url, "routed", novel).headers["x-modelyard-deployment"] == "sim/frontier"
        # scores for both deployments, asked for directly, with prompts: training data for --from-log
        for i, prompt in enumerate([HARD, EASY, "say hi to my cat number 4", "derive the closed form of 9"]):
            for dep, score in (("sim/frontier", 1.0), ("sim/fast", float(i % 2))):
                rid2 = _chat(s.url, dep, prompt).headers["x-request-id"]
                ok = httpx.post(f"{s.url}/v1/feedback", json={"request_id": rid2, "score": score, "prompt": prompt})
                assert ok.status_code == 200
        bad = [({"request_id": "req_nope", "score": 1}, 404, "no logged request"),
               ({"request_id": rid, "score": 2}, 400, "'score' must be a number from 0"),
               ({"request_id": rid, "score": "good"}, 400, "score"),
               ({"score": 1}, 400, "request_id"),
               ({"request_id": rid, "score": 1, "stars": 5}, 400, "unknown field 'stars'")]
        for payload, status, needle in bad:
            resp = httpx.post(f"{s.url}/v1/feedback", json=payload, timeout=10)
            assert resp.status_code == status and needle in resp.text, resp.text
        assert httpx.get(f"{s.url}/v1/feedback").status_code == 405
    db = tmp_path / "requests.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT f.score, f.comment, r.deployment FROM feedback f JOIN requests r "
                            "ON r.id = f.request_id WHERE f.request_id = ?", (rid,)).fetchall()
    assert rows[0] == (0.0, "missed the rhyme", "sim/fast") and len(rows) == 7

    runner = CliRunner()
    out = tmp_path / "from-log.npz"
    res = runner.invoke(cli, ["train", "--from-log", str(db), "--router", "knn", "-o", str(out),
                              "--embedding", "hash-ngram-v1"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "5 scored prompts from the log" in res.output
    res = runner.invoke(cli, ["replay", "--log", str(db), "--router", str(router_file)])
    assert res.exit_code == 0, res.output
    assert "as logged" in res.output and "knn router" in res.output


def test_feedback_needs_the_request_log(tmp_path: Path) -> None:
    data = default_config_data(sim_only=True)
    data["server"] = {"request_log": {"enabled": False}}
    with make_server(tmp_path, data) as s:
        r = httpx.post(f"{s.url}/v1/feedback", json={"request_id": "req_x", "score": 1}, timeout=10)
        assert r.status_code == 400 and "request log" in r.text


def test_synthetic_fixture_writes(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "s.jsonl", n_each=2)
    assert len(path.read_text().splitlines()) == 12


async def test_embedding_is_computed_before_routing_off_the_event_loop(tmp_path: Path, router_file: Path) -> None:
    opts = {"router_file": str(router_file), "threshold": 0.3,
            "models": {"sim/frontier": "strong", "sim/fast": "weak"}}
    gw = Gateway(parse_config(_config(tmp_path, opts), "t.yaml"), source="t.yaml", request_log=False)
    prepare = gw.router.prepares["routed"]  # the learned group registers its pre-routing step
    strategy = prepare.__self__
    assert strategy is gw.router.plans["routed"].strategy and strategy.name == "learned"
    assert "auto" not in gw.router.prepares  # rule/score groups pay nothing
    async with gw:
        r = await gw.chat(gw_request(HARD))
    assert r.deployment == "sim/frontier"
    assert HARD in strategy._cache  # the embedding rank used is the one the pre-routing step cached


def test_no_pre_routing_step_without_a_cache_to_keep_its_result(tmp_path: Path, router_file: Path) -> None:
    opts = {"router_file": str(router_file), "threshold": 0.3, "cache_size": 0,
            "models": {"sim/frontier": "strong", "sim/fast": "weak"}}
    gw = Gateway(parse_config(_config(tmp_path, opts), "t.yaml"), source="t.yaml", request_log=False)
    assert "routed" not in gw.router.prepares and gw.router.plans["routed"].strategy.router.uses_embedding
    assert gw.plan(gw.resolve("routed"), gw_request(HARD))[0][0].name == "sim/frontier"  # embeds in rank


def gw_request(prompt: str) -> Any:
    from modelyard.server.openai_api import parse_request

    return parse_request({"model": "routed", "messages": [{"role": "user", "content": prompt}]})


def test_a_router_without_embeddings_loads_no_model_and_needs_no_worker_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clf.npz"
    fit_router("classifier", synthetic(), strong="strong", weak="weak").save(path)  # default: features only

    def no_model(*_: object) -> None:
        raise AssertionError("the embedding model was asked for")

    monkeypatch.setattr("modelyard.embed.backends.get_embedder", no_model)
    opts = {"router_file": str(path), "threshold": 0.3, "models": {"sim/frontier": "strong", "sim/fast": "weak"}}
    gw = Gateway(parse_config(_config(tmp_path, opts), "t.yaml"), source="t.yaml", request_log=False)
    assert "routed" not in gw.router.prepares
    assert not gw.router.plans["routed"].strategy.traits.prepares  # the plain strategy: no pre-routing step
    route = gw.resolve("routed")
    assert gw.plan(route, gw_request(HARD))[0][0].name == "sim/frontier"
    assert gw.plan(route, gw_request(EASY))[0][0].name == "sim/fast"


def test_replay_refuses_router_models_it_cannot_price_and_maps_them(tmp_path: Path) -> None:
    examples = synthetic()
    for ex in examples:
        ex.cost = {}  # a router trained on data without costs: its model names are all replay has
    router = tmp_path / "nocost.npz"
    fit_router("knn", examples, strong="strong", weak="weak", backend="hash-ngram-v1", params={"k": 10}).save(router)
    data = _config(tmp_path, {})
    del data["model_groups"]["routed"]
    with make_server(tmp_path, data) as s:
        for dep, prompt in (("sim/frontier", HARD), ("sim/fast", EASY)):
            rid = _chat(s.url, dep, prompt).headers["x-request-id"]
            body = {"request_id": rid, "score": 1.0, "prompt": prompt}
            ok = httpx.post(f"{s.url}/v1/feedback", json=body, timeout=10)
            assert ok.status_code == 200, ok.text
    db = str(tmp_path / "requests.db")
    runner = CliRunner()
    res = runner.invoke(cli, ["replay", "--log", db, "--router", str(router)])
    assert res.exit_code == 2 and "no price for router model(s) strong, weak" in res.output, res.output
    assert "--map strong=" in res.output
    cfg = tmp_path / "c.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(data))
    res = runner.invoke(cli, ["replay", "--log", db, "--router", str(router), "--config", str(cfg),
                              "--map", "strong=sim/frontier", "--map", "weak=sim/fast", "--threshold", "0.5"])
    assert res.exit_code == 0, res.output
    policy = next(line for line in res.output.splitlines() if "knn router" in line)
    assert float(policy.split("│")[2]) > 0, res.output
    res = runner.invoke(cli, ["replay", "--log", db, "--router", str(router), "--map", "strong=nowhere"])
    assert res.exit_code == 2 and "neither a deployment of --config nor a catalog card" in res.output
