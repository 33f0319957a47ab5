"""The app's watch over its requests: a deadline on reading the body, and noticing that a client
hung up so its upstream call is cancelled (and stops billing), streamed or not, before or after
the first byte.

A gone client is only seen by reading ASGI `receive()` for `http.disconnect`, which means a
`receive()` awaited beside the request. Most requests a burst answers are over within a
millisecond, so a request gets its watcher only once it has run WATCH_AFTER_S. One timer per app
checks the running requests every WATCH_AFTER_S (body deadlines included) rather than a timer per
request (a uvloop timer armed and cancelled costs ~2.5 µs; a request here costs a dict insert and a
pop). A client that leaves is noticed within 2 × WATCH_AFTER_S at most; a body deadline is kept to
within WATCH_AFTER_S.

A watcher is a `receive()` coroutine stepped from the loop's callbacks as a task would step it,
but without a task: every request of an LLM gateway that waits on a slow upstream is watched, and
a task's creation, registration and cancellation (a CancelledError through the coroutine) cost
more than the rest of the watch together.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .http import Receive

log = logging.getLogger("modelyard.server")

WATCH_AFTER_S = 0.05

GONE = "gone"  # the client disconnected: the request's task was cancelled
TIMED_OUT = "timed out"  # the body did not arrive in time: the request's task was cancelled

# entry fields
_SINCE, _RECEIVE, _STATE, _WATCHER, _DEADLINE = range(5)


class RequestWatch:
    """The app's requests in flight: each with the time its watch started, its `receive` once
    the body is read, why it was cancelled (if it was), its watcher task and its body deadline."""

    __slots__ = ("_handle", "_loop", "_requests", "_unwatched")

    def __init__(self) -> None:
        self._requests: dict[asyncio.Task[Any], list[Any]] = {}
        # The requests the timer still looks at: reading their body, or not watched yet. A watched
        # request leaves it, so a call that lasts minutes is not visited on every tick.
        self._unwatched: dict[asyncio.Task[Any], list[Any]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def reading(self, task: asyncio.Task[Any], timeout_s: float) -> None:
        """`task` starts reading its body: cancel it if the body is not complete in `timeout_s`."""
        loop = task.get_loop()  # (asyncio.get_running_loop() costs a getpid() syscall on Python 3.11)
        now = loop.time()
        self._requests[task] = self._unwatched[task] = [now, None, None, None, now + timeout_s]
        if self._handle is None:
            self._arm(loop)

    def add(self, task: asyncio.Task[Any], receive: Receive) -> None:
        """`task` has its body (its `receive` is free): cancel it if the client disconnects."""
        loop = task.get_loop()
        entry = self._requests.get(task)
        if entry is None:
            self._requests[task] = self._unwatched[task] = [loop.time(), receive, None, None, None]
        else:
            entry[_SINCE], entry[_RECEIVE], entry[_DEADLINE] = loop.time(), receive, None
        if self._handle is None:
            self._arm(loop)

    def state(self, task: asyncio.Task[Any]) -> str | None:
        """GONE or TIMED_OUT if this watch cancelled `task`, else None."""
        entry = self._requests.get(task)
        return None if entry is None else entry[_STATE]

    def discard(self, task: asyncio.Task[Any]) -> None:
        """The request ended: stop its watcher if it has one."""
        entry = self._requests.pop(task, None)
        if entry is None:
            return
        watcher = entry[_WATCHER]
        if watcher is None:
            self._unwatched.pop(task, None)  # (there unless its body deadline passed)
        else:
            entry[_WATCHER] = None  # (the watcher refers to its entry: no cycle left for the GC)
            watcher.stop()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the timer (it was idle), on the loop of the request that found it idle."""
        self._loop = loop
        self._handle = loop.call_later(WATCH_AFTER_S, self._check)

    def _check(self) -> None:
        self._handle = None
        loop = self._loop
        if not self._unwatched or loop is None:  # (idle until a request arrives)
            return
        now = loop.time()
        due = now - WATCH_AFTER_S
        settled = []
        for task, entry in self._unwatched.items():
            if entry[_STATE] is not None:
                settled.append(task)
            elif entry[_DEADLINE] is not None:
                if now >= entry[_DEADLINE]:
                    entry[_STATE] = TIMED_OUT
                    task.cancel()
                    settled.append(task)
            elif entry[_SINCE] <= due:
                entry[_WATCHER] = Watcher(entry, task, loop)
                settled.append(task)
        for task in settled:
            del self._unwatched[task]
        self._handle = loop.call_later(WATCH_AFTER_S, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for task in list(self._requests):
            self.discard(task)


class Watcher:
    """Reads a request's `receive()` until `http.disconnect`, then cancels the request's task.

    The coroutine is stepped the way a task steps it: sent None from the callback of the future it
    last yielded (or soon, after a bare yield); `stop()` closes it, which runs its cleanup (the
    server's waiter is removed, a timer cancelled) as a task's cancellation would.
    """

    __slots__ = ("_coro", "_entry", "_loop", "_task")

    def __init__(self, entry: list[Any], task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> None:
        self._entry, self._task, self._loop = entry, task, loop
        self._coro: Any = entry[_RECEIVE]()
        self._step()

    @property
    def stopped(self) -> bool:
        """True once the client left, the request ended or `receive()` failed."""
        return self._coro is None

    def stop(self) -> None:
        coro, self._coro = self._coro, None
        if coro is not None:
            try:
                coro.close()
            except RuntimeError:  # a receive() that ignored GeneratorExit: nothing more to do with it
                pass

    def _step(self, _: object = None) -> None:
        while (coro := self._coro) is not None:  # (None: stopped meanwhile)
            try:
                yielded = coro.send(None)
            except StopIteration as done:
                if done.value["type"] != "http.disconnect":  # (a server that hands out other messages first)
                    self._coro = self._entry[_RECEIVE]()
                    continue
                self._coro = None
                self._entry[_STATE] = GONE
                self._task.cancel()
                return
            except Exception:  # the server's receive() failed: nothing left to watch
                self._coro = None
                log.debug("request watch: receive() failed", exc_info=True)
                return
            if yielded is None:  # a bare yield (sleep(0)): step again soon
                self._loop.call_soon(self._step)
            elif getattr(yielded, "_asyncio_future_blocking", None):  # a future: step again when it is done
                yielded._asyncio_future_blocking = False
                yielded.add_done_callback(self._step)
            else:  # something a task would refuse too
                self.stop()
                log.debug("request watch: receive() yielded %r, not a future", yielded)
            return
