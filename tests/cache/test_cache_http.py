"""The response cache on the real server over loopback, driven by the official openai and anthropic
SDKs; the sim fleet answers misses."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from conftest import ServerThread, make_server
from modelyard.defaults import default_config_data


def cache_config(**cache: Any) -> dict[str, Any]:
    data = default_config_data(sim_only=True)
    data["cache"] = {"mode": "exact", **cache}
    return data


def oai(s: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0)


def ask(s: ServerThread, content: str, model: str = "sim/fast", headers: dict[str, str] | None = None,
        **kw: Any) -> tuple[Any, httpx.Headers]:
    raw = oai(s).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], extra_headers=headers, **kw)
    return raw.parse(), raw.headers


def rows(s: ServerThread, rid: str) -> tuple[Any, ...]:
    """The request-log row of a request (waiting for the writer's flush)."""
    db = s.server.config.app.gateway.request_log.path
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT cache, saved_usd, cost_usd, deployment, status, input_tokens FROM requests "
                               "WHERE id = ?", (rid,)).fetchone()
        if row is not None:
            return tuple(row)
        time.sleep(0.05)
    raise AssertionError(f"no log row for {rid}")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    cfg = cache_config()
    cfg["model_groups"]["smart"]["cache"] = {"ttl_s": 0.5}
    cfg["model_groups"]["cheap"]["cache"] = {"mode": "off"}
    with make_server(tmp_path_factory.mktemp("cache"), cfg) as s:
        yield s


def test_hit_costs_nothing_names_its_deployment_and_logs_the_saving(srv: ServerThread) -> None:
    first, h1 = ask(srv, "Name three primary colours.")
    assert h1["x-modelyard-cache"] == "miss" and float(h1["x-modelyard-cost-usd"]) > 0
    second, h2 = ask(srv, "Name three primary colours.")
    assert h2["x-modelyard-cache"] == "hit"
    assert float(h2["x-modelyard-cost-usd"]) == 0
    assert h2["x-modelyard-deployment"] == h1["x-modelyard-deployment"] == "sim/fast"
    assert h2["x-modelyard-route"] == "cache"
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage.completion_tokens == first.usage.completion_tokens
    assert second.id != first.id
    miss_row, hit_row = rows(srv, h1["x-request-id"]), rows(srv, h2["x-request-id"])
    assert miss_row[0] == "miss" and miss_row[2] > 0
    assert hit_row[:4] == ("hit", pytest.approx(miss_row[2]), 0.0, "sim/fast")
    assert hit_row[5] == 0  # no tokens went upstream


@pytest.mark.parametrize("change", [
    {"temperature": 0}, {"top_p": 0.5}, {"max_tokens": 77}, {"seed": 4}, {"stop": ["zz"]}, {"user": "u2"},
    {"n": 2}, {"response_format": {"type": "json_object"}},
    {"extra_body": {"frobnicate": 1}},  # a parameter the gateway has never heard of
    {"extra_body": {"frobnicate": 2}},
    {"extra_body": {"modelyard": {"strategy_hint": "x"}}},  # routing hints too
])
def test_a_changed_parameter_misses(srv: ServerThread, change: dict[str, Any]) -> None:
    prompt = f"List the planets, parameters {sorted(change)}."
    ask(srv, prompt)
    _, h = ask(srv, prompt)
    assert h["x-modelyard-cache"] == "hit"
    _, h = ask(srv, prompt, **change)
    assert h["x-modelyard-cache"] == "miss", change
    _, h = ask(srv, prompt, **change)
    assert h["x-modelyard-cache"] == "hit", change  # and the changed request has its own entry


def test_other_group_and_other_messages_miss(srv: ServerThread) -> None:
    ask(srv, "Describe the water cycle.", model="fast")
    assert ask(srv, "Describe the water cycle.", model="sim/fast")[1]["x-modelyard-cache"] == "miss"
    assert ask(srv, "Describe the water cycle!", model="fast")[1]["x-modelyard-cache"] == "miss"
    raw = oai(srv).chat.completions.with_raw_response.create(model="fast", messages=[
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Describe the water cycle."}])
    assert raw.headers["x-modelyard-cache"] == "miss"


def test_sampled_requests_are_not_cached_unless_seeded(srv: ServerThread) -> None:
    for _ in range(2):
        _, h = ask(srv, "Invent a name for a cat.", temperature=0.9)
        assert "x-modelyard-cache" not in h
    ask(srv, "Invent a name for a cat.", temperature=0.9, seed=7)
    assert ask(srv, "Invent a name for a cat.", temperature=0.9, seed=7)[1]["x-modelyard-cache"] == "hit"


def test_logprobs_requests_bypass_the_cache(srv: ServerThread) -> None:
    for _ in range(2):
        _, h = ask(srv, "Say yes.", extra_body={"logprobs": True})
        assert "x-modelyard-cache" not in h


def test_per_request_off_and_group_override(srv: ServerThread) -> None:
    ask(srv, "What is a prime number?")
    _, h = ask(srv, "What is a prime number?", extra_body={"modelyard": {"cache": "off"}})
    assert "x-modelyard-cache" not in h
    for _ in range(2):  # the `cheap` group is configured off
        assert "x-modelyard-cache" not in ask(srv, "What is a prime number?", model="cheap")[1]
    ask(srv, "What is a prime number?", model="cheap", extra_body={"modelyard": {"cache": "exact"}})
    _, h = ask(srv, "What is a prime number?", model="cheap", extra_body={"modelyard": {"cache": "exact"}})
    assert h["x-modelyard-cache"] == "hit"  # a request may opt in where the group is off


def test_a_bad_directive_is_a_400_naming_the_field(srv: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        ask(srv, "hello there", extra_body={"modelyard": {"cache": "sometimes"}})
    assert "modelyard.cache" in str(e.value)


def test_cache_control_no_cache_and_no_store(srv: ServerThread) -> None:
    ask(srv, "What is the speed of sound?")
    _, h = ask(srv, "What is the speed of sound?", headers={"Cache-Control": "no-cache"})
    assert "x-modelyard-cache" not in h and h["x-modelyard-route"] != "cache"  # not looked up: answered upstream
    _, h = ask(srv, "What does no-cache store?", headers={"Cache-Control": "no-cache"})
    assert ask(srv, "What does no-cache store?")[1]["x-modelyard-cache"] == "hit"  # ... but stored
    _, h = ask(srv, "What does no-store store?", headers={"Cache-Control": "no-store"})
    assert "x-modelyard-cache" not in h
    assert ask(srv, "What does no-store store?")[1]["x-modelyard-cache"] == "miss"  # nothing was stored
    _, h = ask(srv, "What is the speed of sound?", headers={"Cache-Control": "no-store"})
    assert "x-modelyard-cache" not in h and h["x-modelyard-route"] != "cache"


def test_ttl_expiry(srv: ServerThread) -> None:
    ask(srv, "Define entropy.", model="smart")  # smart: ttl_s 0.5
    assert ask(srv, "Define entropy.", model="smart")[1]["x-modelyard-cache"] == "hit"
    time.sleep(0.7)
    assert ask(srv, "Define entropy.", model="smart")[1]["x-modelyard-cache"] == "miss"


def test_cached_stream_parses_with_the_openai_sdk_with_usage(srv: ServerThread) -> None:
    prompt = [{"role": "user", "content": "Tell me a short story about a fox and a crow."}]
    full = oai(srv).chat.completions.create(model="sim/fast", messages=prompt)
    raw = oai(srv).chat.completions.with_raw_response.create(
        model="sim/fast", messages=prompt, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-modelyard-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    text, usage, finish, chunks = "", None, None, 0
    for chunk in raw.parse():
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
            assert (chunk.model_extra or {})["modelyard"]["deployment"] == "sim/fast"
            assert (chunk.model_extra or {})["modelyard"]["cost_usd"] == 0
    assert text == full.choices[0].message.content and finish == "stop" and chunks > 3
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_stream_miss_is_stored_and_answers_non_stream_and_anthropic(srv: ServerThread) -> None:
    prompt = "Describe a lighthouse at night in two sentences."
    stream = oai(srv).chat.completions.create(model="sim/fast", messages=[{"role": "user", "content": prompt}],
                                              stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    time.sleep(0.1)  # a stream is stored as a task after its end
    resp, h = ask(srv, prompt)
    assert h["x-modelyard-cache"] == "hit" and resp.choices[0].message.content == text
    # the Anthropic API: its own key (the API's parse gives max_tokens), then a cached stream
    c = anthropic.Anthropic(base_url=srv.url, api_key="unused", max_retries=0)
    kw: dict[str, Any] = {"model": "sim/fast", "max_tokens": 300, "messages": [{"role": "user", "content": prompt}]}
    first = c.messages.create(**kw)
    with c.messages.stream(**kw) as s:
        assert s.response.headers["x-modelyard-cache"] == "hit"
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == first.content[0].text
    assert final.usage.output_tokens == first.usage.output_tokens > 0
    assert final.usage.input_tokens == first.usage.input_tokens > 0
    assert final.stop_reason == "end_turn"


def test_admin_stats_and_clear(srv: ServerThread) -> None:
    ask(srv, "Admin test: what is a noun?")
    ask(srv, "Admin test: what is a noun?")
    stats = httpx.get(srv.url + "/admin/cache/stats").json()
    assert stats["entries"] >= 1 and stats["hits"] >= 1 and stats["misses"] >= 1 and stats["saved_usd"] > 0
    r = httpx.delete(srv.url + "/admin/cache", params={"group": "nope"})
    assert r.status_code == 200 and r.json()["deleted"] == 0
    assert httpx.delete(srv.url + "/admin/cache", params={"color": "x"}).status_code == 400
    r = httpx.delete(srv.url + "/admin/cache", params={"group": "sim/fast", "tenant": "master"})
    assert r.json()["deleted"] >= 1
    assert ask(srv, "Admin test: what is a noun?")[1]["x-modelyard-cache"] == "miss"
    assert httpx.delete(srv.url + "/admin/cache").status_code == 200
    assert httpx.get(srv.url + "/admin/cache/stats").json()["entries"] == 0


def test_admin_needs_the_master_key(tmp_path: Path) -> None:
    with make_server(tmp_path, cache_config(), master_key="mk-test") as s:
        assert httpx.get(s.url + "/admin/cache/stats").status_code == 401
        ok = httpx.get(s.url + "/admin/cache/stats", headers={"authorization": "Bearer mk-test"})
        assert ok.status_code == 200 and ok.json()["entries"] == 0


def test_lru_bound(tmp_path: Path) -> None:
    with make_server(tmp_path, cache_config(max_entries=2)) as s:
        ask(s, "LRU one: what is red?")
        ask(s, "LRU two: what is blue?")
        ask(s, "LRU one: what is red?")  # one is now the most recent
        ask(s, "LRU three: what is green?")  # evicts two
        assert ask(s, "LRU one: what is red?")[1]["x-modelyard-cache"] == "hit"
        assert ask(s, "LRU three: what is green?")[1]["x-modelyard-cache"] == "hit"
        assert ask(s, "LRU two: what is blue?")[1]["x-modelyard-cache"] == "miss"
        assert httpx.get(s.url + "/admin/cache/stats").json()["entries"] == 2


def test_sqlite_backend_survives_a_restart(tmp_path: Path) -> None:
    cfg = cache_config(backend="sqlite", path=str(tmp_path / "cache.db"))
    with make_server(tmp_path, cfg) as s:
        first, h = ask(s, "What is the tallest tree species?")
        assert h["x-modelyard-cache"] == "miss"
    with make_server(tmp_path, cache_config(backend="sqlite", path=str(tmp_path / "cache.db"))) as s:
        again, h = ask(s, "What is the tallest tree species?")
        assert h["x-modelyard-cache"] == "hit" and float(h["x-modelyard-cost-usd"]) == 0
        assert again.choices[0].message.content == first.choices[0].message.content
        assert httpx.get(s.url + "/admin/cache/stats").json()["entries"] == 1
