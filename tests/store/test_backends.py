"""Every store concern on both backends, through the same functions the gateway calls: a SQLite file
and a real Postgres database (tests/store/conftest.py). Each test runs once per backend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pg_server import location_fixture, pg_server_fixture, pg_url_fixture  # noqa: F401  (fixtures)

from modelyard.experiments.data import read_experiment
from modelyard.store import keys, spend, stats
from modelyard.store.feedback import FeedbackStore, read_scored
from modelyard.store.keys import KeyRecord, Limits, Principal
from modelyard.store.location import is_postgres
from modelyard.store.responses import ResponseStore
from modelyard.store.rows import COLUMNS, request_row
from modelyard.store.sqlite import RequestLog
from modelyard.types import Caller, RouteDecision, Scored, Usage


def make_log(location: str, tmp_path: Path, **kw: Any) -> RequestLog:
    if is_postgres(location):
        from modelyard.store.postgres.log import PgRequestLog

        return PgRequestLog(location, spill_path=str(tmp_path / "log.db.postgres"), **kw)
    return RequestLog(location, **kw)


def row(rid: str, cost: float = 0.0, *, status: int = 200, key: str | None = None, team: str | None = None,
        user: str | None = None, ts: float | None = None, experiment: str | None = None, model: str = "g") -> Any:
    r = request_row(rid, model, status, deployment="d1", provider="sim", usage=Usage(input_tokens=10, output_tokens=3),
                    cost_usd=cost, latency_ms=12.5, caller=Caller(key_id=key, team=team, user=user),
                    experiment=experiment,
                    decision=RouteDecision(model=model, deployment="d1", strategy="score", reason="best",
                                           candidates=[Scored("d1", 0.9)]))
    return r._replace(ts=ts) if ts is not None else r


async def test_every_column_round_trips(location: str, tmp_path: Path) -> None:
    log = make_log(location, tmp_path, flush_interval_s=60)
    await log.start()
    r = row("req-1", 0.25, key="k1", team="ml", user="ana")
    log.record(r)
    log.record(row("req-1", 0.5))  # a repeated client request id is a second row, not an error
    assert await log.flush()
    got = log.query(f"SELECT {', '.join(_quoted(location, c) for c in COLUMNS)} FROM requests ORDER BY row_id")
    assert len(got) == 2 and tuple(got[0]) == tuple(r)
    await log.close()
    assert log.written == 2 and log.dropped == 0


def _quoted(location: str, column: str) -> str:
    return f'"{column}"' if is_postgres(location) else column


async def test_keys_teams_users_and_the_version(location: str) -> None:
    assert keys.version(location) in (0, 0)
    k = KeyRecord("key_1", "h" * 64, "abcd", "svc", "ml", "ana", Limits(budget_usd=5.0, rpm=10, metadata={"a": 1}),
                  ("gpt-4o",), None, time.time())
    v1 = keys.insert_key(location, k)
    assert keys.version(location) == v1 >= 1
    assert keys.get_key(location, "key_1") == k
    v2 = keys.update_key(location, keys.revoked(k, 123.0))
    assert v2 == v1 + 1 and keys.get_key(location, "key_1").revoked_at == 123.0  # type: ignore[union-attr]
    team = Principal("team", "ml", Limits(budget_usd=50.0), time.time())
    keys.upsert_principal(location, team, True)
    with pytest.raises(KeyError):
        keys.upsert_principal(location, team, True)
    keys.upsert_principal(location, Principal("team", "ml", Limits(budget_usd=60.0), team.created_at), False)
    keys.upsert_principal(location, Principal("user", "ana", Limits(rpm=3), time.time()), True)
    snap = keys.load(location)
    assert snap.version == keys.version(location)
    assert [x.id for x in snap.keys] == ["key_1"] and snap.teams["ml"].limits.budget_usd == 60.0
    assert snap.users["ana"].limits.rpm == 3
    keys.delete_principal(location, "team", "ml")
    assert "ml" not in keys.load(location).teams
    with pytest.raises(keys.StoreError):
        keys.insert_key(location, k)  # the same id again: refused, nothing changed


async def test_spend_totals_equal_the_sum_of_rows(location: str, tmp_path: Path) -> None:
    log = make_log(location, tmp_path, flush_interval_s=60)
    await log.start()
    now = time.time()
    costs = [0.1, 0.2, 0.30000000000000004, 1e-9, 0.123456789]
    for i, c in enumerate(costs):
        log.record(row(f"r{i}", c, key="k1" if i % 2 else "k2", team="ml", user="ana" if i < 3 else "bob", ts=now - i))
    log.record(row("err", 0.0, status=502, key="k1", ts=now))
    log.record(row("old", 9.0, key="k1", ts=now - 10 * 86400))
    assert await log.flush()
    groups, total = spend.spend(location, "key", now - 86400, now + 1)
    assert {g.group: g.requests for g in groups} == {"k1": 3, "k2": 3}
    assert total.requests == 6 and total.errors == 1
    assert total.cost_units == sum(spend.cost_units(c) for c in costs) == sum(g.cost_units for g in groups)
    by_user, _ = spend.spend(location, "user", now - 86400, now + 1, {"team": "ml"})
    assert {g.group: g.requests for g in by_user} == {"ana": 3, "bob": 2}
    only, t = spend.spend(location, "model", now - 86400, now + 1, {"user": "bob", "key": "k2"})
    assert t.requests == 1 and only[0].group == "g"
    assert log.spent_since("key_id", "k1", now - 86400) == pytest.approx(0.2 + 1e-9)
    assert log.spent_since("user", "bob", now - 86400) == pytest.approx(1e-9 + 0.123456789)
    await log.close()


async def test_feedback_and_scored_requests(location: str, tmp_path: Path) -> None:
    log = make_log(location, tmp_path, flush_interval_s=60)
    await log.start()
    log.record(row("a", 0.1, key="k1"))
    log.record(row("b", 0.1))
    log.record(row("c", 0.1, status=500))
    assert await log.flush()
    fb = FeedbackStore(location)
    got = await fb.request("a")
    assert got is not None and (got.id, got.deployment, got.key_id) == ("a", "d1", "k1")
    assert await fb.request("nope") is None
    await fb.add("a", 0.2, prompt="what is 2+2")
    await fb.add("a", 0.9, comment="better")  # the latest score counts; the prompt is kept from before
    scored = {s.request.id: s for s in read_scored(location)}
    assert set(scored) == {"a", "b"}  # successes only
    assert scored["a"].score == 0.9 and scored["a"].prompt == "what is 2+2" and scored["b"].score is None
    assert [s.request.id for s in read_scored(location, only_scored=True)] == ["a"]
    await log.close()


async def test_stored_responses_belong_to_their_tenant(location: str) -> None:
    store = ResponseStore(location, retention_days=1)
    try:
        await store.put("resp_1", "key:k1", {"id": "resp_1", "x": [1]}, [{"role": "user", "content": "hi"}])
        got = await store.get("resp_1", "key:k1")
        assert got is not None and got.response["x"] == [1] and got.conversation[0]["content"] == "hi"
        assert await store.get("resp_1", "key:k2") is None
        assert not await store.delete("resp_1", "key:k2")
        assert await store.delete("resp_1", "key:k1")
        assert await store.get("resp_1", "key:k1") is None
        expired = ResponseStore(location, retention_days=1e-9)
        await expired.put("resp_2", "master", {"id": "resp_2"}, [])
        await asyncio.sleep(0.01)
        assert await expired.get("resp_2", "master") is None
        expired.close()
    finally:
        store.close()


async def test_dashboard_window_and_experiment_rows(location: str, tmp_path: Path) -> None:
    log = make_log(location, tmp_path, flush_interval_s=60)
    await log.start()
    now = time.time()
    for i in range(6):
        log.record(row(f"x{i}", 0.01, ts=now - i, experiment=f"exp={'a' if i % 2 else 'b'}", model="m"))
    log.record(row("other", 0.01, ts=now, experiment="exp2=a"))
    assert await log.flush()
    rolling, cut = stats.load(location, now - 60, now + 1, 1.0)
    assert not cut and rolling.started == now - 60
    data = read_experiment(location, "exp", ["a", "b"])
    assert data.variants["a"].requests == 3 and data.variants["b"].requests == 3
    assert data.variants["a"].costs_usd == [0.01] * 3
    await log.close()


async def test_retention_deletes_old_rows_in_bounded_batches(location: str, tmp_path: Path) -> None:
    log = make_log(location, tmp_path, flush_interval_s=60, retention_days=1)
    await log.start()
    now = time.time()
    for i in range(25):
        log.record(row(f"old{i}", ts=now - 3 * 86400 - i))
    log.record(row("new", ts=now))
    assert await log.flush()
    assert log.retention is not None
    log.retention.batch = 10
    deleted = [await log._in_thread(log.retention.step_on, log) for _ in range(4)]
    assert deleted == [10, 10, 5, 0]
    assert [r[0] for r in log.query("SELECT id FROM requests")] == ["new"]
    await log.close()
