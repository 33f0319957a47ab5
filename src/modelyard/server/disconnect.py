"""Noticing that a streaming client hung up, so its upstream call is cancelled (and stops billing).

A gone client is only seen by reading ASGI `receive()` for `http.disconnect`, which takes a task
per stream. Most streams that a burst answers are over within a millisecond, so a stream gets its
watcher task only once it has run WATCH_AFTER_S. One timer per app checks the running streams every
WATCH_AFTER_S rather than a timer per stream (a uvloop timer armed and cancelled costs ~2.5 µs; a
stream here costs a dict insert and a pop). A client that leaves early is noticed within 2 ×
WATCH_AFTER_S at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

WATCH_AFTER_S = 0.05

Receive = Callable[[], Awaitable[dict[str, Any]]]


class DisconnectWatch:
    """The app's running streams, each with the time it started and, once it has run long enough,
    the task that waits for its client to disconnect."""

    __slots__ = ("_handle", "_loop", "_streams")

    def __init__(self) -> None:
        # stream task -> [started at (loop time), receive, gone, watcher task or None]
        self._streams: dict[asyncio.Task[Any], list[Any]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, task: asyncio.Task[Any], receive: Receive, gone: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._streams[task] = [loop.time(), receive, gone, None]
        if self._handle is None:  # (armed on the loop of the stream that found it idle)
            self._loop = loop
            self._handle = loop.call_later(WATCH_AFTER_S, self._check)

    def discard(self, task: asyncio.Task[Any]) -> None:
        """The stream ended: stop its watcher if it has one."""
        entry = self._streams.pop(task, None)
        if entry is not None and entry[3] is not None:
            entry[3].cancel()

    def _check(self) -> None:
        self._handle = None
        loop = self._loop
        if not self._streams or loop is None:
            return
        due = loop.time() - WATCH_AFTER_S
        for task, entry in self._streams.items():
            if entry[3] is None and entry[0] <= due:
                entry[3] = loop.create_task(_cancel_on_disconnect(entry[1], task, entry[2]))
        self._handle = loop.call_later(WATCH_AFTER_S, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for task in list(self._streams):
            self.discard(task)


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()
    task.cancel()
