"""The request log's own thread: calls run one at a time, in the order handed over, in that thread;
each caller gets its call's result or exception; a flush-interval pause ends when a batch fills up."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelyard.store.rows import request_row
from modelyard.store.serial_thread import SerialThread
from modelyard.store.sqlite import RequestLog


async def test_calls_run_in_order_in_the_thread_and_hand_back_results_and_errors() -> None:
    worker = SerialThread("modelyard-test-serial")
    seen: list[tuple[int, str]] = []

    def call(i: int) -> int:
        if i == 0:
            time.sleep(0.05)  # the later calls queue up behind it and still run after it
        seen.append((i, threading.current_thread().name))
        return i * 10

    def fail() -> None:
        raise ValueError("refused")

    results = await asyncio.gather(*(worker.run(call, i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert seen == [(i, "modelyard-test-serial") for i in range(5)]
    with pytest.raises(ValueError, match="refused"):
        await worker.run(fail)
    assert await worker.run(call, 7) == 70  # an error does not stop the thread
    worker.stop()
    worker._thread.join(timeout=5)
    assert not worker._thread.is_alive()


async def test_a_cancelled_caller_leaves_the_thread_serving() -> None:
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    worker = SerialThread("modelyard-test-serial")
    slow = asyncio.ensure_future(worker.run(time.sleep, 0.1))
    await asyncio.sleep(0.01)
    slow.cancel()
    assert await worker.run(lambda: "next") == "next"
    assert errors == []  # settling the cancelled call's future raised nothing on the loop
    worker.stop()


async def test_a_full_batch_ends_the_writer_pause(tmp_path) -> None:
    log = RequestLog(str(tmp_path / "log.db"), flush_interval_s=60, batch_size=3)
    await log.start()
    for i in range(3):
        log.record(request_row(f"r{i}", "g", 200))
    for _ in range(200):  # written long before the 60 s pause would end
        if log.written == 3:
            break
        await asyncio.sleep(0.01)
    assert log.written == 3
    await log.close()
