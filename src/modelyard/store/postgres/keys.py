"""Virtual keys, teams and users in Postgres: store/keys.py's tables and version counter.

Same contract as the SQLite functions (backend.KeyTables): only hashes are stored; every write bumps
`keyring_meta.version` in its transaction (the row lock orders concurrent writers), and servers poll
that number, so a key created through one replica works on every other within the poll interval.
Errors reaching the database raise StoreError; a team or user that exists already raises KeyError.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson

from ..keys import (
    _KEY_COLS,
    _PRINCIPAL_COLS,
    _TABLE,
    KeyRecord,
    Principal,
    Snapshot,
    StoreError,
    _key_from_row,
    _key_values,
    _limits_row,
    _principal_from_row,
)
from .db import ERRORS, placeholders, q, run

T = TypeVar("T")

_KEYS = ", ".join(q(c) for c in _KEY_COLS)
_PRINCIPALS = ", ".join(q(c) for c in _PRINCIPAL_COLS)


def _call(location: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    try:
        return run(location, fn)
    except ERRORS as e:
        raise StoreError(f"{location}: {type(e).__name__}: {e}") from None


async def _bump(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("UPDATE keyring_meta SET version = version + 1 RETURNING version"))


def _write(location: str, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> int:
    """`fn` and the version bump in one transaction; the new version."""

    async def tx(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            await fn(conn)
            return await _bump(conn)

    return _call(location, tx)


def version(location: str) -> int:
    async def get(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT version FROM keyring_meta") or 0)

    return _call(location, get)


def load(location: str) -> Snapshot:
    async def read(conn: asyncpg.Connection) -> Snapshot:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            v = int(await conn.fetchval("SELECT version FROM keyring_meta") or 0)
            keys = [_key_from_row(tuple(r)) for r in await conn.fetch(f"SELECT {_KEYS} FROM keys")]
            teams = {p.name: p for p in (_principal_from_row("team", tuple(r))
                                         for r in await conn.fetch(f"SELECT {_PRINCIPALS} FROM teams"))}
            users = {p.name: p for p in (_principal_from_row("user", tuple(r))
                                         for r in await conn.fetch(f"SELECT {_PRINCIPALS} FROM users"))}
        return Snapshot(v, keys, teams, users)

    return _call(location, read)


def get_key(location: str, key_id: str) -> KeyRecord | None:
    async def get(conn: asyncpg.Connection) -> KeyRecord | None:
        r = await conn.fetchrow(f"SELECT {_KEYS} FROM keys WHERE id = $1", key_id)
        return _key_from_row(tuple(r)) if r else None

    return _call(location, get)


def insert_key(location: str, k: KeyRecord) -> int:
    async def ins(conn: asyncpg.Connection) -> None:
        await conn.execute(f"INSERT INTO keys ({_KEYS}) VALUES ({placeholders(len(_KEY_COLS))})", *_key_values(k))

    return _write(location, ins)


def update_key(location: str, k: KeyRecord) -> int:
    cols = [c for c in _KEY_COLS if c != "id"]
    sets = ", ".join(f"{q(c)} = ${i}" for i, c in enumerate(cols, 1))

    async def upd(conn: asyncpg.Connection) -> None:
        await conn.execute(f"UPDATE keys SET {sets} WHERE id = ${len(cols) + 1}", *_key_values(k)[1:], k.id)

    return _write(location, upd)


def upsert_principal(location: str, p: Principal, new: bool) -> int:
    table = _TABLE[p.kind]
    meta = orjson.dumps(p.limits.metadata).decode() if p.limits.metadata else None
    values = (p.name, *_limits_row(p.limits), meta, p.created_at)
    sql = f"INSERT INTO {table} ({_PRINCIPALS}) VALUES ({placeholders(len(_PRINCIPAL_COLS))})"
    if not new:
        sql += " ON CONFLICT (name) DO UPDATE SET " + ", ".join(
            f"{q(c)} = EXCLUDED.{q(c)}" for c in _PRINCIPAL_COLS if c != "name")

    async def put(conn: asyncpg.Connection) -> None:
        try:
            await conn.execute(sql, *values)
        except asyncpg.UniqueViolationError:
            raise KeyError(p.name) from None

    return _write(location, put)


def delete_principal(location: str, kind: str, name: str) -> int:
    async def delete(conn: asyncpg.Connection) -> None:
        await conn.execute(f"DELETE FROM {_TABLE[kind]} WHERE name = $1", name)

    return _write(location, delete)
