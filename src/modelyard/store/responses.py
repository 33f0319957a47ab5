"""Stored responses of the Responses API (`store: true`): a `responses` table in the request log's
SQLite file or in Postgres (store/postgres/responses.py), or in memory when the request log is off.

A response is written before the request that made it returns, so the very next request can name
it as `previous_response_id`. Each row belongs to a tenant (`Caller.tenant`: the virtual key that
created it, or "master"): reads and deletes by another tenant find nothing. Rows expire after the
retention period; expired rows are never returned and are deleted as new ones are written.

All database work runs in the store's own thread, on one connection, so the event loop never
waits on the disk and writes are ordered.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from .location import is_postgres
from .schema import create_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  created REAL NOT NULL,
  expires REAL NOT NULL,
  response TEXT NOT NULL,
  conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires);
"""
_PURGE_EVERY = 200  # writes between deletions of expired rows


@dataclass(slots=True)
class Stored:
    response: dict[str, Any]  # the response object as GET returns it
    conversation: list[dict[str, Any]]  # the turns a follow-up continues (responses_translate.messages_json)


class StoreUnavailable(Exception):
    """The database cannot be read or written right now."""


class ResponseStore:
    def __init__(self, path: str, *, retention_days: float = 30.0, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.retention_s = retention_days * 86400
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-responses")
        self._writes = 0
        self._pg: Any = None  # store/postgres/responses.py for a Postgres location
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        if is_postgres(path):
            from .postgres import db, responses

            self._pg, self._errors = responses, (sqlite3.Error, *db.ERRORS)

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except self._errors as e:
            self._close()
            raise StoreUnavailable(str(e) if isinstance(e, sqlite3.Error) else type(e).__name__) from None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            create_private(self.path)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False,
                                   isolation_level=None)
            conn.executescript(SCHEMA)
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- in the store's thread ---
    def _put(self, rid: str, tenant: str, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        if self._pg is not None:
            return self._pg.put(self.path, rid, tenant, response, conversation, self.retention_s)
        db = self._db()
        now = time.time()
        db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                   (rid, tenant, now, now + self.retention_s, orjson.dumps(response).decode(),
                    orjson.dumps(conversation).decode()))
        self._writes += 1
        if self._writes % _PURGE_EVERY == 1:
            db.execute("DELETE FROM responses WHERE expires < ?", (now,))

    def _get(self, rid: str, tenant: str) -> Stored | None:
        if self._pg is not None:
            return self._pg.get(self.path, rid, tenant)
        row = self._db().execute("SELECT response, conversation FROM responses WHERE id = ? AND tenant = ? "
                                 "AND expires >= ?", (rid, tenant, time.time())).fetchone()
        return Stored(orjson.loads(row[0]), orjson.loads(row[1])) if row else None

    def _delete(self, rid: str, tenant: str) -> bool:
        if self._pg is not None:
            return self._pg.delete(self.path, rid, tenant)
        cur = self._db().execute("DELETE FROM responses WHERE id = ? AND tenant = ? AND expires >= ?",
                                 (rid, tenant, time.time()))
        return cur.rowcount > 0

    # --- the API ---
    async def put(self, rid: str, tenant: str, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        await self._run(self._put, rid, tenant, response, conversation)

    async def get(self, rid: str, tenant: str) -> Stored | None:
        return await self._run(self._get, rid, tenant)

    async def delete(self, rid: str, tenant: str) -> bool:
        return await self._run(self._delete, rid, tenant)

    def close(self) -> None:
        self._thread.submit(self._close)
        self._thread.shutdown(wait=True)
