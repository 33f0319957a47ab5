"""Rows the database could not take, kept in a JSON-lines file next to it until it can.

Each process appends to its own `<db>.spill-<pid>.jsonl` (created 0600). To replay, a process claims
a file by renaming it to `<db>.spill-<its pid>-r<n>.jsonl` (a rename is atomic, so two processes never
replay the same file), inserts its lines in one transaction and deletes it after the commit. Files
of processes that are gone are claimed too; a failed replay leaves the claimed file for the next try.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator

import orjson

from .rows import COLUMNS, Row
from .schema import insert_rows

_CHUNK = 2000
_PAD = tuple(Row._field_defaults.get(c) for c in COLUMNS)  # fills columns newer than a file's rows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class SpillFile:
    def __init__(self, db_path: str, max_bytes: int) -> None:
        self.db_path = db_path
        self.max_bytes = max_bytes
        self.pid = os.getpid()
        self.path = f"{db_path}.spill-{self.pid}.jsonl"
        self.bytes = 0  # held in this process's unreplayed files
        self._lock = threading.Lock()  # appends (spill thread) vs. claiming for replay (writer thread)
        self._claims = itertools.count(1)

    def write(self, rows: list[Row]) -> int:
        """Append rows up to the size bound; returns how many were kept (the rest are the caller's loss).
        Raises OSError when the file cannot be written at all."""
        lines = [orjson.dumps(tuple(r)) + b"\n" for r in rows]
        with self._lock:
            room = self.max_bytes - self.bytes
            keep = 0
            size = 0
            for line in lines:
                if size + len(line) > room:
                    break
                size += len(line)
                keep += 1
            if keep:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "ab") as f:
                    f.write(b"".join(lines[:keep]))
                self.bytes += size
        return keep

    def waiting(self) -> list[str]:
        """Spill files this process may replay: its own and those of processes that are gone."""
        out = []
        for f in sorted(glob.glob(glob.escape(self.db_path) + ".spill-*.jsonl")):
            owner = f[len(self.db_path) + len(".spill-"):].split("-")[0].split(".")[0]
            if owner.isdigit() and (int(owner) == self.pid or not _alive(int(owner))):
                out.append(f)
        return out

    def replay(self, conn: sqlite3.Connection) -> int:
        """Insert every waiting file's rows; returns the number of rows. Raises sqlite3.Error (the
        claimed files stay for the next try)."""

        def insert(chunks: Iterator[list[Row]]) -> int:
            n = 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                for chunk in chunks:
                    insert_rows(conn, chunk)
                    n += len(chunk)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return n

        return self.replay_with(insert)

    def replay_with(self, insert: Callable[[Iterator[list[Row]]], int]) -> int:
        """Claim each waiting file and hand its rows, in chunks, to `insert` (which writes them all in
        one transaction or raises); the file is deleted once `insert` returns."""
        done = 0
        for f in self.waiting():
            mine = f"{self.db_path}.spill-{self.pid}-r"
            if not f.startswith(mine):
                claimed = f"{mine}{next(self._claims)}.jsonl"
                with self._lock:
                    try:
                        os.rename(f, claimed)
                    except FileNotFoundError:  # another process claimed it first
                        continue
                    if f == self.path:
                        self.bytes = 0
                f = claimed
            done += insert(_chunks(f))
            os.unlink(f)
        return done


def _chunks(path: str) -> Iterator[list[Row]]:
    with open(path, "rb") as f:
        chunk: list[Row] = []
        for line in f:
            try:
                values = orjson.loads(line)
                chunk.append(Row(*values, *_PAD[len(values):]))  # a file from an older schema: padded
            except orjson.JSONDecodeError:  # a line cut short by a crash mid-write
                continue
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
