"""The Redis backend's Lua scripts against a real redis-server: rate take/wait/refund/adjust, budget
reserve/settle/seed/rollover, all-or-nothing admission."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from modelyard.state.redis import P, RedisState
from modelyard.state.settings import StateSettings


@pytest.fixture
async def store(redis_server: Any) -> Any:
    s = RedisState(StateSettings(url=redis_server.url))
    await s.start()
    assert s.up
    yield s
    await s.close()


async def flush(s: RedisState) -> None:
    await s._flush(sync=True)


async def window(s: RedisState, key: str) -> tuple[int, int]:
    reqs = await s.r.zcard(P + key)
    toks = int(await s.r.hget(P + "rtok:" + key, "#t") or 0)
    return reqs, toks


async def test_rate_take_refuses_with_the_exact_wait(store: RedisState) -> None:
    assert (await store.admit([("rate:key:a", 2, 0, 10)], [], "m1"))[0] == "ok"
    await asyncio.sleep(0.3)
    assert (await store.admit([("rate:key:a", 2, 0, 10)], [], "m2"))[0] == "ok"
    res = await store.admit([("rate:key:a", 2, 0, 10)], [], "m3")
    assert res[:2] == ["rate", 1]
    assert 59.3 < float(res[2]) < 59.75  # the first ticket leaves 60 s after it was taken
    assert (int(res[3]), int(res[4])) == (2, 20)
    assert await window(store, "rate:key:a") == (2, 20)  # nothing counted for the refusal
    ttl = await store.r.ttl(P + "rate:key:a")
    assert 0 < ttl <= 61


async def test_tpm_adjust_refund_and_never_fitting(store: RedisState) -> None:
    assert (await store.admit([("rate:team:t", 0, 100, 50)], [], "m1"))[0] == "ok"
    store.rate_adjust("rate:team:t", "m1", 80)
    await flush(store)
    assert await window(store, "rate:team:t") == (1, 80)
    res = await store.admit([("rate:team:t", 0, 100, 30)], [], "m2")
    assert res[0] == "rate" and 59 < float(res[2]) <= 60
    res = await store.admit([("rate:team:t", 0, 100, 101)], [], "m3")
    assert res[0] == "rate" and res[2] == "inf"
    store.rate_refund("rate:team:t", "m1")
    store.rate_refund("rate:team:t", "m1")  # (twice: no effect the second time)
    await flush(store)
    assert await window(store, "rate:team:t") == (0, 0)
    assert (await store.admit([("rate:team:t", 0, 100, 100)], [], "m4"))[0] == "ok"


async def test_admission_is_all_or_nothing(store: RedisState) -> None:
    assert (await store.admit([("rate:team:t", 1, 0, 5)], [], "m0"))[0] == "ok"
    res = await store.admit([("rate:key:k", 5, 0, 5), ("rate:team:t", 1, 0, 5)],
                            [("key:k", "2026-12", 10.0, 1.0, "0.0", 100)], "m1")
    assert res[:2] == ["rate", 2]
    assert await window(store, "rate:key:k") == (0, 0)  # the key's window was not taken either
    assert not await store.r.exists(P + "budget:key:k") or float(
        await store.r.hget(P + "budget:key:k", "reserved") or 0) == 0.0


async def test_budget_seed_reserve_settle_and_rollover(store: RedisState) -> None:
    b = ("key:k", "2026-12", 1.1, 0.4, "", 3600)
    assert await store.admit([], [b], "m1") == ["seed", 1]  # the ledger does not know this month yet
    ok = await store.admit([], [(*b[:4], "0.25", 3600)], "m1")
    assert ok[0] == "ok" and float(ok[1]) == 0.25 and float(ok[2]) == 0.4
    assert (await store.admit([], [b], "m2"))[0] == "ok"  # 0.25 + 0.8 <= 1.1; a third would not fit
    refused = await store.admit([], [b], "m3")
    assert refused[:2] == ["budget", 1] and float(refused[2]) == 0.25 and math.isclose(float(refused[3]), 0.8)
    store.settle_shared("key:k", "2026-12", 0.4, 0.1)
    store.settle_shared("key:k", "2026-12", 0.4, 0.0)  # a release
    await flush(store)
    assert math.isclose(float(await store.r.hget(P + "budget:key:k", "spent")), 0.35)
    assert math.isclose(float(await store.r.hget(P + "budget:key:k", "reserved")), 0.0, abs_tol=1e-9)
    assert math.isclose(store._known_spend["key:k"], 0.35)
    assert 3500 < await store.r.ttl(P + "budget:key:k") <= 3600
    # a new month: the old ledger is replaced once the new period is seeded
    nxt = ("key:k", "2027-01", 1.0, 0.4, "", 0)
    assert await store.admit([], [nxt], "m4") == ["seed", 1]
    ok = await store.admit([], [(*nxt[:4], "0.0", 0)], "m4")
    assert ok[0] == "ok" and float(ok[1]) == 0.0
    store.settle_shared("key:k", "2026-12", 0.4, 0.3)  # a settle of the old month changes nothing now
    await flush(store)
    assert float(await store.r.hget(P + "budget:key:k", "spent")) == 0.0
    assert await store.r.ttl(P + "budget:key:k") == -1  # (ttl 0: kept)


async def test_deployment_windows_mirror_what_other_replicas_took(store: RedisState, redis_server: Any) -> None:
    other = RedisState(StateSettings(url=redis_server.url))
    await other.start()
    try:
        key = "rate:deployment:d"
        for _ in range(3):
            t, _w = other.rate_take(key, 1000.0, 5, None, 10)
            assert t is not None
        await flush(other)
        assert await window(store, key) == (3, 30)
        store._mirrored.add(key)
        await flush(store)
        assert store.others[key] == (3, 30)
        assert store.rate_used(key, 1000.0) == (3, 30)
        assert store.rate_take(key, 1000.0, 5, None, 10)[0] is not None
        assert store.rate_take(key, 1000.0, 5, None, 10)[0] is not None
        ticket, wait = store.rate_take(key, 1000.0, 5, None, 10)  # 3 elsewhere + 2 here = 5
        assert ticket is None and wait > 0
        assert store.rate_wait(key, 1000.0, 5, None, 10) > 0
    finally:
        await other.close()
