"""The SQLite request log: rows are buffered on the request path and written in batches by a worker
thread; `flush`/`close` put everything on disk; the route column holds the decision as made."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.routing.decision import LazyDecision
from modelyard.store.sqlite import COLUMNS, RequestLog, Row, request_row
from modelyard.types import Caller, ChatRequest, Message, RouteDecision, Scored, Usage


def rows(path: str) -> list[tuple]:
    return sqlite3.connect(path).execute("SELECT id, status, input_tokens, cost_usd, route FROM requests "
                                         "ORDER BY id").fetchall()


async def test_rows_reach_disk_on_flush_and_close(tmp_path) -> None:
    path = str(tmp_path / "log.db")
    log = RequestLog(path, flush_interval_s=60, batch_size=10_000)  # no background write in this test
    await log.start()
    decision = RouteDecision(model="g", deployment="d1", strategy="score", reason="best score",
                             candidates=[Scored("d1", 0.9), Scored("d2", 0.1, False, "too small")],
                             features={"task": "math"})
    log.record(request_row("req_1", "g", 200, deployment="d1", provider="sim", usage=Usage(input_tokens=12),
                           cost_usd=0.5, decision=decision))
    assert rows(path) == []  # buffered, not written on the request path
    await log.flush()
    (rid, status, tokens, cost, route), = rows(path)
    assert (rid, status, tokens, cost) == ("req_1", 200, 12, 0.5)
    d = json.loads(route)
    assert d["chosen"] == "d1" and d["features"] == {"task": "math"}
    assert d["candidates"][1] == {"deployment": "d2", "eligible": False, "reason": "too small", "score": 0.1}
    log.record(request_row("req_2", "g", 404, error="unknown model"))
    await log.close()  # a clean shutdown loses nothing
    assert [r[:2] for r in rows(path)] == [("req_1", 200), ("req_2", 404)]


def test_request_row_fills_every_column_and_bounds_client_text() -> None:
    decision = RouteDecision(model="g", deployment="d1", strategy="score", reason="best score",
                             candidates=[Scored("d1", 0.9)], features={"task": "math", "blob": "x" * 50_000})
    usage = Usage(input_tokens=12, output_tokens=7, cached_input_tokens=3, reasoning_tokens=2)
    row = request_row("r" * 5000, "m" * 5000, 502, deployment="d1", provider="sim", error_type="upstream_error",
                      error="e" * 50_000, usage=usage, cost_usd=0.25, latency_ms=80.5, ttft_ms=12.5, stream=True,
                      user="u" * 100_000, api="anthropic", decision=decision)
    assert len(row) == len(COLUMNS)
    v = dict(zip(COLUMNS, row, strict=True))
    assert len(v["id"]) == 200 and v["id"].endswith("…[truncated]")
    assert len(v["user"]) == 256 and len(v["model"]) == 256 and len(v["error"]) == 2000
    assert (v["input_tokens"], v["output_tokens"], v["cached_input_tokens"], v["reasoning_tokens"]) == (12, 7, 3, 2)
    assert (v["stream"], v["api"], v["status"], v["deployment"]) == (1, "anthropic", 502, "d1")
    route = json.loads(v["route"])  # still JSON, still says what was chosen, without the oversized features
    assert len(v["route"]) <= 16_384 and route["chosen"] == "d1" and "blob" not in route["features"]


async def test_a_flush_waits_for_the_batch_already_being_written(tmp_path) -> None:
    path = str(tmp_path / "log.db")
    log = RequestLog(path, flush_interval_s=60, batch_size=10_000)
    await log.start()
    for i in range(2000):
        log.record(request_row(f"req_{i:05d}", "g", 200, deployment="d", provider="sim"))
    first = asyncio.create_task(log.flush())
    await asyncio.sleep(0)  # the first flush owns the buffer now
    await log.flush()  # returns only once those rows are on disk too
    assert len(rows(path)) == 2000
    await first
    await log.close()


def test_quick_path_decisions_are_logged_without_an_analysis() -> None:
    gw = Gateway(parse_config({
        "deployments": {"a": {"provider": "sim", "model": "sim/fast"},
                        "b": {"provider": "sim", "model": "sim/frontier"}},
        "model_groups": {"plain": {"deployments": ["a", "b"]},  # first-healthy: reads no features
                         "scored": {"deployments": ["a", "b"], "strategy": "score"}},
    }), request_log=False)
    req = ChatRequest(model="plain", messages=[Message("user", "hello there")])
    _chain, quick = gw.plan(gw.resolve("plain"), req)
    assert isinstance(quick, LazyDecision)
    logged = quick.log_dict()
    assert logged["features"] == {"analysis": "skipped"} and logged["chosen"] == "a"
    assert [c["deployment"] for c in logged["candidates"]] == ["a", "b"]
    assert quick.to_dict()["features"]["input_tokens"] > 0  # an explanation still runs it
    _chain, full = gw.plan(gw.resolve("scored"), req)
    assert full.log_dict()["features"]["task"] is not None  # routing analysed it: the log keeps it


async def test_a_refused_row_in_a_batch_is_dropped_alone_and_counted(tmp_path) -> None:
    """Rows go in many per statement: one the database refuses (an integer past SQLite's range) sends the
    batch through one by one, so every other row of it is still written, in order."""
    path = str(tmp_path / "log.db")
    log = RequestLog(path, flush_interval_s=60, batch_size=10_000)
    await log.start()
    good = [request_row(f"r{i:03d}", "g", 200, usage=Usage(input_tokens=i)) for i in range(123)]
    for i, r in enumerate(good):
        log.record(r)
        if i == 70:
            log.record(request_row("bad", "g", 200)._replace(input_tokens=2**70))
    assert await log.flush()
    await log.close()
    assert (log.written, log.dropped) == (123, 1)
    got = sqlite3.connect(path).execute("SELECT id, input_tokens FROM requests ORDER BY row_id").fetchall()
    assert got == [(r.id, r.input_tokens) for r in good]


def test_request_row_puts_each_argument_in_its_named_column() -> None:
    decision = RouteDecision(model="g", deployment="d2", strategy="score", fallbacks=["d1"], failures=["timeout"],
                             attempts=2, upstream_s=0.25)
    usage = Usage(input_tokens=11, output_tokens=12, cached_input_tokens=13, reasoning_tokens=14, cache_write_tokens=15)
    row = request_row("rid", "g", 201, deployment="d2", provider="prov", error_type="et", error="err", usage=usage,
                      cost_usd=1.5, latency_ms=2.5, ttft_ms=3.5, stream=True, api="anthropic", decision=decision,
                      caller=Caller(key_id="k", team="t", user="u"), cache="miss", saved_usd=4.5, experiment="e=v",
                      prompt="p", response="r")
    assert type(row) is Row and row._asdict() == {
        "id": "rid", "ts": row.ts, "model": "g", "deployment": "d2", "provider": "prov", "status": 201,
        "error_type": "et", "error": "err", "input_tokens": 11, "output_tokens": 12, "cached_input_tokens": 13,
        "reasoning_tokens": 14, "cost_usd": 1.5, "latency_ms": 2.5, "ttft_ms": 3.5, "stream": 1, "user": "u",
        "api": "anthropic", "route": decision.log_json(), "key_id": "k", "team": "t", "cache": "miss",
        "saved_usd": 4.5, "experiment": "e=v", "cache_write_tokens": 15, "attempts": 2, "fallbacks": 1,
        "retries": 0, "fallback_reasons": "timeout", "upstream_ms": 250.0, "prompt": "p", "response": "r"}
    assert isinstance(row.ts, float)


def test_an_answered_request_row_names_its_deployment_caller_and_outcome() -> None:
    """The answered path builds its row by position (`make_row`): each value lands in its column."""
    gw = Gateway(parse_config({"deployments": {"a": {"provider": "sim", "model": "sim/fast"}},
                               "model_groups": {"plain": {"deployments": ["a"]}}}), request_log=False)
    rows: list[Row] = []
    gw.observers.append(rows.append)
    req = ChatRequest(model="plain", messages=[Message("user", "hi")], user="u1",
                      caller=Caller(key_id="k", team="t"))
    req.experiment = "exp=b"
    _chain, decision = gw.plan(gw.resolve("plain"), req)
    usage = Usage(input_tokens=5, output_tokens=7)
    gw._log_ok("rid", req, gw.deployments["a"], usage, 0.25, 12.5, 3.5, decision, True, "anthropic", status=201,
               error_text="note", cache="miss", saved_usd=0.5)
    (row,) = rows
    assert {k: v for k, v in row._asdict().items() if k != "ts"} == {
        "id": "rid", "model": "plain", "deployment": "a", "provider": "sim", "status": 201, "error_type": None,
        "error": "note", "input_tokens": 5, "output_tokens": 7, "cached_input_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": 0.25, "latency_ms": 12.5, "ttft_ms": 3.5, "stream": 1, "user": "u1", "api": "anthropic",
        "route": decision.log_json(), "key_id": "k", "team": "t", "cache": "miss", "saved_usd": 0.5,
        "experiment": "exp=b", "cache_write_tokens": 0, "attempts": 0, "fallbacks": 0, "retries": 0,
        "fallback_reasons": None, "upstream_ms": None, "prompt": None, "response": None}
