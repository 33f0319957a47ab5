"""The Redis backend's start/close against a real redis-server: close ends the sync task and writes
what was queued, even when it is called while the task is being woken."""

from __future__ import annotations

import asyncio
from typing import Any

from modelyard.state.redis import P, RedisState
from modelyard.state.settings import StateSettings


async def test_close_right_after_a_queued_settle_ends_and_flushes(redis_server: Any) -> None:
    # `_queue` wakes the sync task; close() in the same step used to cancel it while its wait
    # completed, a cancel Python 3.11's wait_for drops: the task then looped for ever and close hung.
    for i in range(20):
        s = RedisState(StateSettings(url=redis_server.url))
        await s.start()
        assert s.up
        res = await s.admit([], [("key:k", "total", 100.0, 1.0, "0", 0)], f"m{i}")
        assert res[0] == "ok"
        await asyncio.sleep(0.01)  # the sync task is waiting for work again
        s.settle_shared("key:k", "total", 1.0, 0.25)
        async with asyncio.timeout(5):
            await s.close()
        assert s._task is None
    check = RedisState(StateSettings(url=redis_server.url))
    await check.start()
    try:
        spent, reserved = await check.r.hmget(P + "budget:key:k", "spent", "reserved")
        assert float(spent) == 20 * 0.25  # every settle queued just before close reached Redis
        assert float(reserved) == 0.0
    finally:
        await check.close()


async def test_close_while_redis_is_away_ends(redis_server: Any) -> None:
    s = RedisState(StateSettings(url=redis_server.url, timeout_s=0.2))
    await s.start()
    redis_server.stop()
    s.settle_shared("key:k", "total", 1.0, 0.25)
    await asyncio.sleep(0.3)  # the flush fails: the store is down and keeps the settle queued
    assert not s.up and s.status()["queued"] == 1
    async with asyncio.timeout(5):
        await s.close()
    assert s._task is None


async def test_flush_runs_the_batch_after_redis_lost_its_scripts(redis_server: Any) -> None:
    s = RedisState(StateSettings(url=redis_server.url))
    await s.start()
    try:
        assert (await s.admit([], [("key:k", "total", 100.0, 2.0, "0", 0)], "m1"))[0] == "ok"
        await s.r.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
        s.settle_shared("key:k", "total", 2.0, 0.5)
        await s._flush(sync=True)
        spent, reserved = await s.r.hmget(P + "budget:key:k", "spent", "reserved")
        assert (float(spent), float(reserved)) == (0.5, 0.0)
        assert s.status()["queued"] == 0
    finally:
        await s.close()
