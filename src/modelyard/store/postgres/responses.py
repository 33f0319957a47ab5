"""Stored Responses in Postgres (backend.ResponseTable): the `responses` table store/responses.py
keeps in SQLite, shared by every replica, so a follow-up's `previous_response_id` resolves whichever
replica made the first response. Rows belong to one tenant and expire after the retention period;
expired rows are never returned, and are deleted as new ones are written."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import orjson

from ..responses import Stored
from .db import run

_PURGE_EVERY = 200
_writes = 0


def put(location: str, rid: str, tenant: str, response: dict[str, Any], conversation: list[dict[str, Any]],
        retention_s: float) -> None:
    global _writes
    _writes += 1
    purge = _writes % _PURGE_EVERY == 1
    now = time.time()

    async def upsert(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO responses (id, tenant, created, expires, response, conversation) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, "
            "created = EXCLUDED.created, expires = EXCLUDED.expires, response = EXCLUDED.response, "
            "conversation = EXCLUDED.conversation",
            rid, tenant, now, now + retention_s, orjson.dumps(response).decode(), orjson.dumps(conversation).decode())
        if purge:
            await conn.execute("DELETE FROM responses WHERE expires < $1", now)

    run(location, upsert)


def get(location: str, rid: str, tenant: str) -> Stored | None:
    async def fetch(conn: asyncpg.Connection) -> Any:
        return await conn.fetchrow("SELECT response, conversation FROM responses WHERE id = $1 AND tenant = $2 "
                                   "AND expires >= $3", rid, tenant, time.time())

    row = run(location, fetch)
    return Stored(orjson.loads(row[0]), orjson.loads(row[1])) if row else None


def delete(location: str, rid: str, tenant: str) -> bool:
    async def remove(conn: asyncpg.Connection) -> str:
        return str(await conn.execute("DELETE FROM responses WHERE id = $1 AND tenant = $2 AND expires >= $3",
                                      rid, tenant, time.time()))

    return run(location, remove).split()[-1] != "0"
