"""Appending result lines so that a killed job loses no finished result and tears at most one line.

Each line goes to the file in one `write(2)` on an O_APPEND descriptor, straight from the event loop
(no user-space buffer to lose): once `append` returns, the line is in the kernel's page cache and
survives the process being killed (SIGKILL included). `fsync` — which also survives the machine
losing power — runs off the event loop in a worker thread, once per `sync_every` lines or
`sync_interval_s`, whichever comes first, and at close; docs/BATCH.md has the measured cost of
syncing every line instead. A power cut can leave a torn last line: `resume.scan` drops it.
"""

from __future__ import annotations

import asyncio
import os
import time


class Appender:
    def __init__(self, path: str, *, sync_every: int = 256, sync_interval_s: float = 1.0) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.sync_every = max(1, sync_every)
        self.sync_interval_s = sync_interval_s
        self.lines = 0  # written by this run
        self._unsynced = 0
        self._last_sync = time.monotonic()
        self._syncing: asyncio.Future[None] | None = None

    def append(self, line: bytes) -> None:
        """Write one line (without its newline) in one system call."""
        data = line + b"\n"
        written = os.write(self.fd, data)
        while written < len(data):  # a short write (disk full, a signal): finish the line
            written += os.write(self.fd, data[written:])
        self.lines += 1
        self._unsynced += 1
        if self._unsynced >= self.sync_every or time.monotonic() - self._last_sync >= self.sync_interval_s:
            self._sync_in_background()

    def _sync_in_background(self) -> None:
        if self._syncing is not None and not self._syncing.done():
            return  # one at a time; the next append after it ends starts another
        self._unsynced = 0
        self._last_sync = time.monotonic()
        if self.sync_every == 1:  # asked for a sync per line: do it now, in order
            os.fsync(self.fd)
            return
        self._syncing = asyncio.get_running_loop().run_in_executor(None, os.fsync, self.fd)

    async def close(self) -> None:
        """Wait for a sync under way, sync what is left, close."""
        if self._syncing is not None:
            await self._syncing
        await asyncio.to_thread(os.fsync, self.fd)
        os.close(self.fd)


class LazyAppender:
    """An Appender that creates its file only when the first line comes (no empty errors file)."""

    def __init__(self, path: str, **kw: float) -> None:
        self.path = path
        self._kw = kw
        self._inner: Appender | None = None

    @property
    def lines(self) -> int:
        return self._inner.lines if self._inner else 0

    def append(self, line: bytes) -> None:
        if self._inner is None:
            self._inner = Appender(self.path, **self._kw)  # type: ignore[arg-type]
        self._inner.append(line)

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
