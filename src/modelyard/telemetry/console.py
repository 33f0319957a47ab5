"""The process's console (stderr of `modelyard serve`) as a sink that never blocks the caller.

A console whose reader stalls (a log collector that stopped draining the pipe) blocks the next write
once the pipe's buffer is full. With a `logging.StreamHandler` the blocked writer holds the handler's
lock, and the event loop's next log call waits on that lock: the whole gateway stops. Here a log call
formats its line and puts it on a bounded queue without waiting (`put_nowait`); one writer thread
writes what arrived with `os.write` on the file descriptor, so a blocked write holds no lock anyone
else takes (not the handler's, not the buffered stream's). A full queue drops the line and counts it;
the count is in the metrics (`modelyard_log_lines_dropped_total`, via `on_drop`) and, once the console
takes lines again, in a warning line at most every `NOTE_EVERY_S`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

CAPACITY = 10_000  # lines waiting for the console (a few MB at most); more are dropped
NOTE_EVERY_S = 10.0
_BATCH = 512  # lines per write


class Drops:
    """Lines dropped in this process, and who is told of each (the metric's counter)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()  # held for an increment only
        self._hook: Callable[[], None] | None = None

    def add(self) -> None:
        with self._lock:
            self.count += 1
        hook = self._hook
        if hook is not None:
            hook()

    def on_drop(self, hook: Callable[[], None] | None) -> None:
        self._hook = hook


DROPS = Drops()


def on_drop(hook: Callable[[], None] | None) -> None:
    """Call `hook` for every line dropped from now on (telemetry/metrics.py's counter)."""
    DROPS.on_drop(hook)


def dropped() -> int:
    """Lines dropped so far in this process."""
    return DROPS.count


class ConsoleHandler(logging.Handler):
    """A logging handler that formats in the caller's thread and hands the line to a writer thread
    without waiting; the writer owns the file descriptor `fd`."""

    def __init__(self, fd: int, capacity: int = CAPACITY, drops: Drops = DROPS,
                 note_every_s: float = NOTE_EVERY_S) -> None:
        super().__init__()
        self.fd = fd
        self.drops = drops
        self.note_every_s = note_every_s
        self._queue: queue.Queue[str | None] = queue.Queue(capacity)
        self._reported = 0
        self._noted_at = 0.0
        self._thread = threading.Thread(target=self._run, name="modelyard-console", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.drops.add()

    def _run(self) -> None:
        q = self._queue
        while True:
            lines = [q.get()]
            with contextlib.suppress(queue.Empty):
                while len(lines) < _BATCH:
                    lines.append(q.get_nowait())
            text = [s for s in lines if s is not None]
            if text:
                self._write(("\n".join(text) + "\n").encode("utf-8", "replace"))
            note = self._note()  # the console took the last write: say what it missed
            if note:
                self._write((note + "\n").encode("utf-8", "replace"))
            if len(text) < len(lines):
                return

    def _note(self) -> str | None:
        """The warning that says how many lines were dropped since the last one (rate-limited)."""
        n = self.drops.count
        now = time.monotonic()
        if n == self._reported or now - self._noted_at < self.note_every_s:
            return None
        record = logging.LogRecord("modelyard", logging.WARNING, __file__, 0,
                                   "dropped %d console log line(s): the console (stderr) was not being read "
                                   "(%d dropped since start)", (n - self._reported, n), None)
        self._reported, self._noted_at = n, now
        try:
            return self.format(record)
        except Exception:
            return record.getMessage()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)  # blocks while the reader is stalled: only this thread waits
            except InterruptedError:
                continue
            except OSError:  # the reader is gone (EPIPE) or the descriptor closed: nothing to write to
                return
            view = view[n:]

    def close(self) -> None:
        """Write what is queued (waiting at most a moment for a stalled console) and stop the writer."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._thread.join(timeout=2)
        super().close()
