"""The app's watch over its requests: a deadline on reading the body, and noticing that a client
hung up so its upstream call is cancelled (and stops billing), streamed or not, before or after
the first byte.

A gone client is only seen by reading ASGI `receive()` for `http.disconnect`, which takes a task
per request. Most requests a burst answers are over within a millisecond, so a request gets its
watcher task only once it has run WATCH_AFTER_S. One timer per app checks the running requests
every WATCH_AFTER_S (body deadlines included) rather than a timer per request (a uvloop timer armed
and cancelled costs ~2.5 µs; a request here costs a dict insert and a pop). A client that leaves
is noticed within 2 × WATCH_AFTER_S at most; a body deadline is kept to within WATCH_AFTER_S.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .http import Receive

WATCH_AFTER_S = 0.05

GONE = "gone"  # the client disconnected: the request's task was cancelled
TIMED_OUT = "timed out"  # the body did not arrive in time: the request's task was cancelled

# entry fields
_SINCE, _RECEIVE, _STATE, _WATCHER, _DEADLINE = range(5)


class RequestWatch:
    """The app's requests in flight: each with the time its watch started, its `receive` once
    the body is read, why it was cancelled (if it was), its watcher task and its body deadline."""

    __slots__ = ("_handle", "_loop", "_requests")

    def __init__(self) -> None:
        self._requests: dict[asyncio.Task[Any], list[Any]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def reading(self, task: asyncio.Task[Any], timeout_s: float) -> None:
        """`task` starts reading its body: cancel it if the body is not complete in `timeout_s`."""
        loop = task.get_loop()  # (asyncio.get_running_loop() costs a getpid() syscall on Python 3.11)
        now = loop.time()
        self._requests[task] = [now, None, None, None, now + timeout_s]
        self._arm(loop)

    def add(self, task: asyncio.Task[Any], receive: Receive) -> None:
        """`task` has its body (its `receive` is free): cancel it if the client disconnects."""
        loop = task.get_loop()
        entry = self._requests.get(task)
        if entry is None:
            self._requests[task] = [loop.time(), receive, None, None, None]
        else:
            entry[_SINCE], entry[_RECEIVE], entry[_DEADLINE] = loop.time(), receive, None
        self._arm(loop)

    def state(self, task: asyncio.Task[Any]) -> str | None:
        """GONE or TIMED_OUT if this watch cancelled `task`, else None."""
        entry = self._requests.get(task)
        return None if entry is None else entry[_STATE]

    def discard(self, task: asyncio.Task[Any]) -> None:
        """The request ended: stop its watcher if it has one."""
        entry = self._requests.pop(task, None)
        if entry is not None and entry[_WATCHER] is not None:
            entry[_WATCHER].cancel()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is None:  # (armed on the loop of the request that found it idle)
            self._loop = loop
            self._handle = loop.call_later(WATCH_AFTER_S, self._check)

    def _check(self) -> None:
        self._handle = None
        loop = self._loop
        if not self._requests or loop is None:
            return
        now = loop.time()
        due = now - WATCH_AFTER_S
        for task, entry in self._requests.items():
            if entry[_STATE] is not None:
                continue
            if entry[_DEADLINE] is not None:
                if now >= entry[_DEADLINE]:
                    entry[_STATE] = TIMED_OUT
                    task.cancel()
            elif entry[_WATCHER] is None and entry[_SINCE] <= due:
                entry[_WATCHER] = loop.create_task(_cancel_on_disconnect(entry, task))
        self._handle = loop.call_later(WATCH_AFTER_S, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for task in list(self._requests):
            self.discard(task)


async def _cancel_on_disconnect(entry: list[Any], task: asyncio.Task[Any]) -> None:
    receive = entry[_RECEIVE]
    while (await receive())["type"] != "http.disconnect":
        pass
    entry[_STATE] = GONE
    task.cancel()
