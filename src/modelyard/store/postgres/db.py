"""One asyncpg pool per database, on its own event loop in its own thread.

Every store function is synchronous (callers on an event loop run it through a thread, as they do
for SQLite), so the Postgres code has one shape: `run(location, fn)` hands `fn(connection)` to the
pool's loop and waits for it. The pool's loop is never the server's: a slow database blocks only the
calling thread, and the CLI uses the same functions with no loop of its own. The thread starts on
first use, so a process that forks workers opens its connections in each worker, after the fork.

Migrations run once per process, on the first connection (schema.migrate: an advisory lock makes
concurrent replicas take turns).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from ..location import dsn

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
POOL_MAX = 4

# The database cannot be reached or refused the statement as a whole (not one row's fault).
ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError,
                                           asyncio.TimeoutError, concurrent.futures.TimeoutError)
# One row the database refuses on its own (a value out of range, a wrong type).
BAD_ROW: tuple[type[BaseException], ...] = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
                                            asyncpg.exceptions.DataError, ValueError, TypeError, OverflowError)


class Database:
    """The pool of one location; `run` from any thread but the pool's own."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: asyncpg.Pool | None = None
        self._migrated = False
        self.applied: list[int] = []  # migrations this process applied
        self._start_lock = threading.Lock()
        self._pool_lock: asyncio.Lock | None = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name="modelyard-postgres", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(dsn(self.location), min_size=0, max_size=POOL_MAX,
                                                       timeout=CONNECT_TIMEOUT_S,
                                                       command_timeout=COMMAND_TIMEOUT_S)
            if not self._migrated:
                from .schema import migrate

                async with self._pool.acquire() as conn:
                    self.applied = await migrate(conn)
                self._migrated = True
            return self._pool

    async def _call(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pool = await self._get_pool()
        async with pool.acquire(timeout=CONNECT_TIMEOUT_S) as conn:
            return await fn(conn)

    def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], timeout: float = COMMAND_TIMEOUT_S + 5) -> T:
        """`fn(connection)` on the pool's loop; its result, or its exception (ERRORS when the database
        cannot be reached)."""
        fut = asyncio.run_coroutine_threadsafe(self._call(fn), self._ensure_loop())
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def close(self) -> None:
        """Close the pool (connections are given back to the server)."""
        if self._loop is None or self._pool is None:
            return
        pool, self._pool = self._pool, None
        fut = asyncio.run_coroutine_threadsafe(pool.close(), self._loop)
        try:
            fut.result(5.0)
        except ERRORS:
            pool.terminate()


_DATABASES: dict[str, Database] = {}
_LOCK = threading.Lock()


def database(location: str) -> Database:
    """The process's one Database for `location` (a forked worker makes its own: the parent's loop
    thread does not exist in the child)."""
    with _LOCK:
        db = _DATABASES.get(location)
        if db is None or db.pid != os.getpid():
            db = _DATABASES[location] = Database(location)
        return db


def run(location: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    return database(location).run(fn)


def migrate_now(location: str) -> tuple[int, list[int]]:
    """Apply every pending migration now (`modelyard db migrate`): the schema version after, and the
    versions this call applied."""
    from .schema import current_version, migrate

    db = database(location)
    first = not db._migrated  # then connecting migrates, and records what it applied
    again = db.run(migrate)  # (an earlier start in this process may predate a column: checked again)
    applied = (db.applied if first else []) + again
    return db.run(current_version), applied


def q(name: str) -> str:
    """A quoted identifier (`user` is a reserved word in Postgres)."""
    return '"' + name.replace('"', '""') + '"'


def placeholders(n: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))


__all__ = ["BAD_ROW", "ERRORS", "Database", "database", "migrate_now", "placeholders", "q", "run"]
