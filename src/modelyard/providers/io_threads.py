"""The upstream client's I/O threads: one wreq (tokio) runtime per process, shared by every
provider's clients, its threads named `modelyard-io` and, on Linux, scheduled `SCHED_BATCH`
while the gateway is busy.

Why batch: the event loop hands the I/O threads work on every request (send this, read the next
body chunk) and they hand answers back. On a busy core a woken I/O thread preempted the loop each
time — ~1.2 context switches per request, each one costing the loop its warm caches — and then
found one request to serve. A batch thread does not preempt on waking: it runs when the loop waits
for I/O or its time slice ends, and then serves every request queued meanwhile. Measured on one
core at 50 concurrent (docs/BENCHMARKS.md): the I/O thread's CPU per request 44 → 25 µs
non-streamed, 61 → 33 µs streamed; req/s +9 to +15 %, with lower p99.

Why only while busy: with one request in flight the hand-over is the request's critical path, and
a batch thread waits for the loop to finish its turn before sending, and is preempted by the loop
mid-answer (holding the GIL the loop then waits for): +0.03 ms p50 at 1 concurrent. So in `auto`
(the default) the threads are batch from BUSY_AT requests in flight until the count is back to
IDLE_AT: `modelyard serve` gives the HTTP app `follow` as its in-flight callback. `batch` and
`normal` fix the policy. Nothing here runs unless a command calls it: a library user's process
keeps the kernel's default.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import wreq

THREAD_NAME = "modelyard-io"
MODES = ("auto", "batch", "normal")
BUSY_AT = 4  # requests in flight from which the threads are batch (auto)
IDLE_AT = 1  # ... until the count is back to this

_runtime: wreq.Runtime | None = None
_mode = "auto"
_busy = False  # the server's last word (auto)
_batched = False  # the policy the runtime's threads have now
_tids: list[int] = []  # the runtime's threads


def configure(mode: str) -> None:
    """Choose the threads' policy (`server.io_threads`: auto, batch or normal). One per process:
    the runtime is."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"io_threads: must be one of {', '.join(MODES)}, got {mode!r}")
    _mode = mode
    _sync()


def busy(batch: bool) -> None:
    """The server's word that it is busy (True) or idle again (False); auto mode follows it."""
    global _busy
    _busy = batch
    _sync()


def follow(inflight: int) -> None:
    """The server's number of requests in flight, each time it changes: busy from BUSY_AT, idle
    again at IDLE_AT (a no-op in between, and when the policy already matches)."""
    if inflight == BUSY_AT:
        busy(True)
    elif inflight == IDLE_AT:
        busy(False)


def runtime() -> wreq.Runtime:
    """The process's I/O runtime, started on first use with the policy wanted then."""
    global _runtime, _batched, _tids
    if _runtime is None:
        import wreq  # (here: a gateway without HTTP deployments never loads the client)

        # The threads inherit the creating thread's policy: set it around the creation, so none is
        # missed. They are the tasks that appear meanwhile (the constructor holds the GIL, and
        # names its threads only once they run).
        linux = _linux()
        known = set(os.listdir("/proc/self/task")) if linux else set()
        before = _set(0, os.SCHED_BATCH) if linux and _wanted() else None
        try:
            _runtime = wreq.Runtime(thread_name=THREAD_NAME)
        finally:
            if before is not None:
                _set(0, before)
        _batched = before is not None
        _tids = [int(t) for t in os.listdir("/proc/self/task") if t not in known] if linux else []
    return _runtime


def _wanted() -> bool:
    return _mode == "batch" or (_mode == "auto" and _busy)


def _sync() -> None:
    """Give a running runtime's threads the wanted policy, if they have not got it."""
    if _runtime is not None and _wanted() is not _batched:
        _apply(_wanted())


def threads() -> dict[int, int]:
    """The runtime's threads in this process: native thread id -> scheduling policy."""
    out: dict[int, int] = {}
    if not _linux():
        return out
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != THREAD_NAME:
                    continue
            out[int(tid)] = os.sched_getscheduler(int(tid))
        except OSError:  # the thread ended meanwhile
            continue
    return out


def _linux() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "SCHED_BATCH")


def _set(tid: int, policy: int) -> int | None:
    """Give thread `tid` (0: this one) `policy`; its previous policy, or None if it could not."""
    try:
        before = os.sched_getscheduler(tid)
        os.sched_setscheduler(tid, policy, os.sched_param(0))
    except OSError:  # not permitted here (a sandbox), or the thread ended: the policy stays
        return None
    return before


def _apply(batch: bool) -> None:
    """Two syscalls per thread; called only when the policy changes."""
    global _batched
    if not _linux():
        return
    policy = os.SCHED_BATCH if batch else os.SCHED_OTHER
    for tid in _tids:
        _set(tid, policy)  # (a thread that ended is skipped)
    _batched = batch
