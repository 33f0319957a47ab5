"""The upstream client's I/O threads: one wreq (tokio) runtime per process, shared by every
provider's clients, its threads named `modelyard-io` and, on Linux, scheduled `SCHED_BATCH`.

Why batch: the event loop hands the I/O threads work on every request (send this, read the next
body chunk) and they hand answers back. On a busy core a woken I/O thread preempted the loop each
time — ~1.2 context switches per request, each one costing the loop its warm caches — and then
found one request to serve. A batch thread does not preempt on waking: it runs when the loop waits
for I/O or its time slice ends, and then serves every request queued meanwhile. Measured on one
core at 50 concurrent (docs/BENCHMARKS.md): the I/O thread's CPU per request 44 → 24 µs
non-streamed, 61 → 33 µs streamed; req/s +13 % and +15 %, with lower p99. With a spare core the
policy changes nothing (a thread woken onto an idle core runs at once), and at 1 concurrent the loop
is waiting whenever the thread has work.

The threads inherit the policy of the thread that creates the runtime, so it is set on the creating
thread around the creation: no thread is ever missed. `server.io_threads: normal` keeps the
kernel's default.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import wreq

THREAD_NAME = "modelyard-io"

_runtime: wreq.Runtime | None = None
_batch = True
_applied: bool | None = None  # the policy the runtime's threads have


def configure(batch: bool) -> None:
    """Choose the threads' policy (`server.io_threads`); applied now if the runtime already runs."""
    global _batch
    _batch = batch
    if _runtime is not None and _applied is not batch:
        _reschedule(batch)


def runtime() -> wreq.Runtime:
    """The process's I/O runtime, started on first use."""
    global _runtime, _applied
    if _runtime is None:
        import wreq  # (here: a gateway without HTTP deployments never loads the client)

        policy = _policy(_batch)
        before = _set(0, policy) if policy is not None else None
        try:
            _runtime = wreq.Runtime(thread_name=THREAD_NAME)
        finally:
            if before is not None:
                _set(0, before)
        _applied = _batch if before is not None else None
    return _runtime


def threads() -> dict[int, int]:
    """The runtime's threads in this process: native thread id -> scheduling policy."""
    out: dict[int, int] = {}
    if not sys.platform.startswith("linux"):
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


def _policy(batch: bool) -> int | None:
    """The policy to give the threads, or None where there is no such control (not Linux)."""
    if not hasattr(os, "SCHED_BATCH") or not sys.platform.startswith("linux"):
        return None
    return os.SCHED_BATCH if batch else os.SCHED_OTHER


def _set(tid: int, policy: int) -> int | None:
    """Give thread `tid` (0: this one) `policy`; its previous policy, or None if it could not."""
    try:
        before = os.sched_getscheduler(tid)
        os.sched_setscheduler(tid, policy, os.sched_param(0))
    except OSError:  # not permitted here (a sandbox), or the thread ended: the default stays
        return None
    return before


def _reschedule(batch: bool) -> None:
    global _applied
    policy = _policy(batch)
    if policy is None:
        return
    for tid in threads():
        _set(tid, policy)
    _applied = batch
