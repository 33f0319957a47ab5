"""One thread that runs a log's calls in the order they were handed to it, awaited from the event loop.

It does what a one-worker ThreadPoolExecutor under `loop.run_in_executor` does, with less in between:
a call is queued with the loop's future for its result, and the thread settles that future on the
loop. The request log hands its thread a batch every flush interval; the executor's own future,
condition, idle semaphore and the state copying of `wrap_future` cost more Python per hand-off than
inserting a small batch does.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

_Call = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class SerialThread:
    """A daemon thread running queued calls one at a time; `stop` ends it after the calls queued
    before (a process exiting without `stop` does not wait for it)."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in the thread, after every call handed over before; its result or its exception."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._calls.put((fn, args, loop, fut))
        return await fut

    def stop(self) -> None:
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, args, loop, fut = call
            try:
                result, error = fn(*args), None
            except BaseException as e:  # handed to the awaiting caller, as an executor would
                result, error = None, e
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, fut, result, error)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
