"""Timeouts every provider gets, enforced in execution rather than in each adapter.

Connect timeouts belong to the HTTP client (the adapters' wreq clients, whose per-request timeout is
the deployment's `timeout_s`). Execution adds (execution/attempt.py):
- the request deadline, and `timeout_s` for providers that do not enforce it themselves:
  `asyncio.timeout_at` around the call — only when it is sooner than what the provider enforces,
  because a timer costs microseconds on every request;
- time to first token: the same, around a stream's first chunk;
- idle time between chunks, and the time limit, for the rest of a stream: `GuardedStream`, which
  also feeds health when the stream ends, however it ends.

Streams are watched by one `Watchdog` per event loop rather than a timer each: a chunk only
stores a timestamp, and the watchdog, every tick, cancels the reads that have been waiting on the
upstream for longer than their idle limit (or past their time limit). The tick is a quarter of the
shortest idle limit being watched (at most 1 s), so an idle limit is enforced within +25 % (a
tick more when the loop itself stalled: see Watchdog). Only time spent waiting on the upstream
counts as idle: a slow client is not the upstream's fault (and the server's disconnect handling
covers a gone client).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, cast

from ..errors import ModelyardError, Timeout
from ..types import StreamChunk

if TYPE_CHECKING:
    from ..deployment import Deployment
    from .health import HealthTracker

MAX_TICK_S = 1.0
MIN_TICK_S = 0.005


class Watchdog:
    """Checks every live GuardedStream of one event loop, every tick, while there are any.

    A sweep that runs more than a tick late means the loop itself was stalled (CPU starvation, a
    long GC, blocking code): data may be sitting unread in a socket, and the loop runs timers
    before it polls I/O. Such a sweep expires nothing; the next one, a tick later, decides.
    """

    __slots__ = ("__weakref__", "_due", "_handle", "_ref", "streams", "tick")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ref = weakref.ref(loop)  # not a strong reference: the registry must not keep loops alive
        self.streams: set[GuardedStream] = set()
        self.tick = MAX_TICK_S
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def add(self, s: GuardedStream, every: float) -> None:
        self.streams.add(s)
        if every < self.tick:  # a tighter limit than any watched so far: tick faster from now on
            self.tick = every
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
        if self._handle is None:
            loop = self._ref()
            if loop is not None:
                self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.tick
        self._handle = loop.call_at(self._due, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        loop = self._ref()
        if loop is None:
            return
        now = loop.time()
        if now - self._due <= self.tick:  # on time: the loop has been reading its sockets
            for s in list(self.streams):
                s._check(now)
        if self.streams:
            self._arm(loop)
        else:
            self.tick = MAX_TICK_S


# loop -> its watchdog; entries die with their loop (streams and the timer hold the watchdog while
# it has work, and a watchdog refers to its loop only while it has streams).
_WATCHDOGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = weakref.WeakKeyDictionary()
_last: weakref.ref[Watchdog] | None = None  # the common case is one loop: skip the weak-dict lookup


def watchdog(loop: asyncio.AbstractEventLoop) -> Watchdog:
    global _last
    w = _last() if _last is not None else None
    if w is not None and w._ref() is loop:
        return w
    w = _WATCHDOGS.get(loop)
    if w is None:
        w = _WATCHDOGS[loop] = Watchdog(loop)
    _last = weakref.ref(w)
    return w


async def close_stream(agen: AsyncIterator[StreamChunk]) -> None:
    """Close a provider's stream: providers declare AsyncIterator, and every one is an async generator."""
    await cast("AsyncGenerator[StreamChunk, None]", agen).aclose()


class GuardedStream:
    """The rest of a started stream: idle and total timeouts, health accounting, breaker release."""

    __slots__ = ("_agen", "_done", "_expired", "_health", "_idle", "_late", "_task", "_time",
                 "_token", "_until", "_waiting", "_watchdog", "dep", "ttft_ms")

    def __init__(self, agen: AsyncIterator[StreamChunk], dep: Deployment, health: HealthTracker, token: int,
                 *, idle_s: float | None, until: float, ttft_ms: float) -> None:
        self._agen = agen
        self.dep = dep
        self._health = health
        self._token = token
        self._idle = idle_s
        self._until = until  # loop time: the request deadline or the deployment's limit, whichever is first
        self.ttft_ms = ttft_ms
        loop = asyncio.get_running_loop()
        self._time = loop.time
        self._waiting = 0.0  # loop time the pending read started; 0 when not reading
        self._task: asyncio.Task[object] | None = None
        self._expired: Timeout | None = None  # set by the watchdog before it cancels the read
        self._late = False  # the time limit passed between reads: the next read fails
        self._done = False
        every = MAX_TICK_S if idle_s is None else max(MIN_TICK_S, min(MAX_TICK_S, idle_s / 4))
        self._watchdog = watchdog(loop)
        self._watchdog.add(self, every)

    def _check(self, now: float) -> None:
        """Called by the watchdog."""
        if now >= self._until:
            if self._waiting and self._task is not None:
                self._expire(Timeout(f"deployment '{self.dep.name}' stream passed its time limit (the request "
                                     "deadline or the deployment's timeout_s)", deployment=self.dep.name))
            else:
                self._late = True
                self._watchdog.streams.discard(self)  # nothing more to watch: the next read fails
        elif self._idle is not None and self._waiting and now - self._waiting >= self._idle \
                and self._task is not None:
            self._expire(Timeout(f"deployment '{self.dep.name}' sent nothing for {self._idle:g} s in the "
                                 "middle of a stream (idle_timeout_s)", deployment=self.dep.name))

    def _expire(self, err: Timeout) -> None:
        self._expired = err
        self._watchdog.streams.discard(self)
        assert self._task is not None
        self._task.cancel()

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._done:
            raise StopAsyncIteration
        if self._late:
            err = Timeout(f"deployment '{self.dep.name}' stream passed its time limit", deployment=self.dep.name)
            try:
                await close_stream(self._agen)
            finally:
                self._end(err)
            raise err
        task = self._task
        if task is None or task.done():  # one task reads at a time; current_task() per chunk costs 0.5 µs
            self._task = asyncio.current_task()
        self._waiting = self._time()
        try:
            chunk = await self._agen.__anext__()
        except StopAsyncIteration:
            self._end(None, ok=True)
            raise
        except BaseException as exc:
            expired, self._expired = self._expired, None
            if expired is not None and self._task is not None:
                outside = self._task.uncancel() > 0  # someone else cancelled too (client gone)
                if not (outside and isinstance(exc, asyncio.CancelledError)):
                    self._end(expired)
                    raise expired from None
            if isinstance(exc, ModelyardError):
                self._end(exc)
            else:  # cancelled from outside (client gone), or a bug: no verdict on the deployment
                self._end(None)
            raise
        finally:
            self._waiting = 0.0
        return chunk

    async def aclose(self) -> None:
        """Stop early: close the upstream call; no verdict on the deployment."""
        if not self._done:
            try:
                await close_stream(self._agen)
            finally:
                self._end(None)

    def _end(self, error: ModelyardError | None, ok: bool = False) -> None:
        if self._done:
            return
        self._done = True
        self._watchdog.streams.discard(self)
        h, name = self._health, self.dep.name
        h.finished(name)
        h.breaker.release(name, self._token)
        if ok:
            h.ok(name, None, self.ttft_ms)
        elif error is not None:
            h.failed(name, error)


def deadline_error(dep: Deployment, what: str, seconds: float, *, request_deadline: bool) -> Timeout:
    """The Timeout for a call cut short by the request deadline or by one of the deployment's limits."""
    if request_deadline:
        msg = f"the request deadline ({seconds:g} s) passed while waiting for deployment '{dep.name}'"
    else:
        msg = f"deployment '{dep.name}' did not send {what} within {seconds:g} s"
    return Timeout(msg, deployment=dep.name)
