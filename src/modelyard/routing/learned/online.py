"""Online learning that survives restarts and reaches every worker: the feedback table is the record.

`POST /v1/feedback` with a prompt writes a row to the feedback table (store/feedback.py) in the
request-log database. This process's online routers (knn strategies with `online: true`) learn from
those rows: every row at start-up, so what was learned is not lost with the process, and new rows
every POLL_S seconds, so rows written by other workers or replicas sharing the database reach this
one too. The feedback endpoint calls `catch_up` right after its insert, so its own process learns at
once. Each row is learned once per process: rows are read in id order from the last one seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...store.backend import db_errors
from ...store.location import is_postgres
from .strategy import _live, learn_online

if TYPE_CHECKING:
    from ...deployment import Deployment

log = logging.getLogger("modelyard.routing.online")

POLL_S = 5.0
BATCH = 5000

_NEW_ROWS = ("SELECT f.id, f.prompt, f.score, (SELECT r.deployment FROM requests r WHERE r.id = f.request_id "
             "ORDER BY r.row_id DESC LIMIT 1) FROM feedback f WHERE f.id > ? AND f.prompt IS NOT NULL "
             "ORDER BY f.id LIMIT ?")


def learns_online(deployments: dict[str, Deployment]) -> bool:
    """Whether any live strategy over these deployments learns from feedback."""
    return any(s.opts.online and s.router.kind == "knn" and any(deployments.get(n) is d for n, d in
                                                                 s.deployments.items()) for s in list(_live))


class OnlineFeedback:
    def __init__(self, db_path: str, deployments: dict[str, Deployment], *, poll_s: float = POLL_S) -> None:
        self.db_path = db_path
        self.deployments = deployments
        self.poll_s = poll_s
        self.last_id = 0  # the last feedback row learned from
        self.learned = 0  # rows that reached at least one router
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        taught = await self.catch_up()
        if taught:
            log.info("online routers learned from %d feedback rows in %s", len(taught), self.db_path)
        self._task = asyncio.create_task(self._poll())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def catch_up(self) -> dict[int, int]:
        """Learn from every feedback row written since the last call; returns, per row that taught
        any, how many routers learned from it. Empty (and logged) when the database cannot be read
        now: the rows stay for the next call."""
        async with self._lock:
            try:
                return await asyncio.to_thread(self._read_and_learn)
            except db_errors(self.db_path) as e:
                log.warning("online learning could not read feedback from %s: %s", self.db_path, e)
                return {}

    def _read_and_learn(self) -> dict[int, int]:
        if is_postgres(self.db_path):  # the feedback table in Postgres, shared by every replica
            from ...store.postgres.records import new_feedback

            return self._learn(lambda: new_feedback(self.db_path, self.last_id, BATCH))
        conn = sqlite3.connect(self.db_path, timeout=1.0)

        def read() -> list[Any]:
            try:
                return conn.execute(_NEW_ROWS, (self.last_id, BATCH)).fetchall()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):  # a new database: nothing written yet
                    return []
                raise

        try:
            return self._learn(read)
        finally:
            conn.close()

    def _learn(self, read: Callable[[], list[Any]]) -> dict[int, int]:
        taught: dict[int, int] = {}
        while True:
            rows = read()
            for fid, prompt, score, deployment in rows:
                n = learn_online(self.deployments, prompt, deployment, float(score)) if deployment else 0
                if n:
                    taught[fid] = n
                self.last_id = fid
            if len(rows) < BATCH:
                break
        self.learned += len(taught)
        return taught

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.catch_up()
