"""Health samples for hedging, and GuardedStream's idle limit: only time waiting on the upstream
counts, a slow consumer does not."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator

import pytest

from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.errors import Timeout
from modelyard.resilience.breaker import CALL
from modelyard.resilience.health import SAMPLES, HealthTracker
from modelyard.resilience.timeouts import GuardedStream

DEP = Deployment(name="a", provider="openai", model="m", card=unknown_card("m", "openai"))


def test_quantiles_come_from_recent_samples() -> None:
    h = HealthTracker(["a"])
    assert h.quantile("a", 0.9, ttft=True) is None
    for ms in range(1, 101):
        h.ok("a", latency_ms=float(ms))
    lat = h.quantile("a", 0.9, ttft=False)
    assert lat is not None and 100 - SAMPLES < lat <= 100  # the last SAMPLES observations only
    assert h.quantile("a", 0.9, ttft=True) is None
    assert h.quantile("a", 0.5, ttft=False, min_samples=1000) is None
    assert h.by_name["a"].ewma_latency_ms is not None and h.by_name["a"].success_rate == pytest.approx(1.0)


async def upstream(gaps: list[float]) -> AsyncIterator[str]:
    for i, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        yield f"chunk{i}"


def guard(gaps: list[float], idle_s: float, health: HealthTracker, until_s: float = 30.0) -> GuardedStream:
    loop = asyncio.get_running_loop()
    health.started("a")
    return GuardedStream(upstream(gaps), DEP, health, CALL, idle_s=idle_s, until=loop.time() + until_s,
                         ttft_ms=1.0)  # type: ignore[arg-type]


async def test_a_slow_consumer_is_not_an_idle_upstream() -> None:
    h = HealthTracker(["a"])
    got = []
    async for c in guard([0.0] * 4, idle_s=0.05, health=h):
        got.append(c)
        await asyncio.sleep(0.1)  # the client takes twice the idle limit per chunk
    assert got == ["chunk0", "chunk1", "chunk2", "chunk3"]
    assert h.by_name["a"].inflight == 0 and h.by_name["a"].ewma_ttft_ms == 1.0


async def test_an_idle_upstream_is_cut_and_counted_against_the_deployment() -> None:
    h = HealthTracker(["a"])
    got = []
    with pytest.raises(Timeout) as e:
        async for c in guard([0.0, 0.0, 5.0], idle_s=0.05, health=h):
            got.append(c)
    assert got == ["chunk0", "chunk1"] and "idle_timeout_s" in e.value.message
    assert h.by_name["a"].inflight == 0 and h.by_name["a"].failures == 1


async def test_the_time_limit_cuts_a_stream_that_keeps_dripping() -> None:
    h = HealthTracker(["a"])
    with pytest.raises(Timeout):
        async for _ in guard([0.02] * 100, idle_s=1.0, health=h, until_s=0.2):
            pass


async def test_an_outside_cancel_is_not_turned_into_a_timeout() -> None:
    h = HealthTracker(["a"])

    async def consume() -> None:
        async for _ in guard([0.0, 5.0], idle_s=10.0, health=h):
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.by_name["a"].inflight == 0 and h.by_name["a"].failures == 0  # no verdict on the deployment


async def test_a_stalled_event_loop_is_not_mistaken_for_an_idle_upstream() -> None:
    """The loop is blocked for 5 idle limits while the chunk arrives on the socket: when it wakes,
    the overdue watchdog sweep must not cut the stream before the loop has read its sockets."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)

    async def upstream_on_socket() -> AsyncIterator[str]:
        yield "first"
        yield (await loop.sock_recv(a, 100)).decode()

    h = HealthTracker(["a"])
    h.started("a")
    stream = GuardedStream(upstream_on_socket(), DEP, h, CALL, idle_s=0.1, until=loop.time() + 30,
                           ttft_ms=1.0)  # type: ignore[arg-type]

    def stall_the_loop() -> None:
        threading.Timer(0.1, b.send, (b"second",)).start()  # arrives while the loop is blocked
        time.sleep(0.5)

    got = [await anext(stream)]
    loop.call_later(0.01, stall_the_loop)
    got.append(await anext(stream))
    assert got == ["first", "second"]
    a.close()
    b.close()
